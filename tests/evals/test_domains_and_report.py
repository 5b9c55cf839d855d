"""Domain caches (the row <-> token contract the top-contexts page relies on) and the suite's report page."""

from __future__ import annotations

import json
import os

import numpy as np
import pandas as pd
import pytest
import torch

from sae_difficulty.modalities.llm import backbone as llm_backbone
from sae_difficulty.modalities.llm.domains import (
    domain_documents,
    domain_windows,
    read_domain_cache,
    write_domain_cache,
)
from sae_difficulty.modalities.llm.patching import residuals
from sae_difficulty.reports.evals_report import headline_line, write_report
from sae_difficulty.reports.ledger import HEADLINE_FILE
from sae_difficulty.utils.errors import InputError
from sae_difficulty.utils.markdown import markdown_table_lines
from tests.modalities.llm.test_tasks import make_tiny_model

os.environ["HF_HUB_OFFLINE"] = "1"
torch.set_num_threads(1)
CONTEXT = 16


@pytest.fixture(scope="module")
def backbone(tmp_path_factory):
    return llm_backbone.load_backbone(make_tiny_model(tmp_path_factory.mktemp("tiny"), n_ctx=64, seed=2), device="cpu")


def test_domains_are_the_corpus_kinds_of_one_role():
    prose, code = domain_documents("prose", "sae"), domain_documents("code", "sae")
    assert prose and code and {d.kind for d in prose} == {"prose"} and {d.kind for d in code} == {"code"}
    assert {d.role for d in prose + code} == {"sae"}
    with pytest.raises(InputError, match="domain 'poetry' is unknown"):
        domain_documents("poetry", "sae")


def test_windows_are_bos_led_and_seeded(backbone):
    first = domain_windows(backbone, "code", "heldout", CONTEXT, seed=0)
    assert first.shape[1] == CONTEXT and bool((first[:, 0] == backbone.bos_id).all())
    assert torch.equal(first, domain_windows(backbone, "code", "heldout", CONTEXT, seed=0))
    assert not torch.equal(first, domain_windows(backbone, "code", "heldout", CONTEXT, seed=1))


def test_heldout_row_i_is_window_i_over_context_minus_one(backbone, tmp_path):
    params = {"tokens": 300, "heldout_tokens": 100, "context_length": CONTEXT, "batch_size": 4}
    summary = write_domain_cache(backbone, "prose", 1, tmp_path / "acts.zarr", params, seed=3)
    train, heldout, tokens = read_domain_cache(tmp_path / "acts.zarr")
    assert train.shape == (300, backbone.d_model) and heldout.shape == (100, backbone.d_model)
    assert tokens.shape == (-(-100 // (CONTEXT - 1)), CONTEXT) and summary["heldout_tokens"] == 100
    recomputed = residuals(backbone, "blocks.1.hook_resid_post", 1, torch.from_numpy(tokens.astype(np.int64)))
    for row in (0, 14, 15, 47, 99):
        window, position = divmod(row, CONTEXT - 1)
        np.testing.assert_allclose(np.asarray(heldout[row]), recomputed[window, 1 + position], atol=1e-5)


def test_a_cache_without_its_tokens_is_a_one_line_error(tmp_path):
    import zarr

    group = zarr.open_group(str(tmp_path / "bad.zarr"), mode="w", zarr_format=3)
    group.create_array("train", data=np.zeros((4, 2), np.float32))
    group.create_array("heldout", data=np.zeros((4, 2), np.float32))
    with pytest.raises(InputError, match="heldout_tokens"):
        read_domain_cache(tmp_path / "bad.zarr")


def test_report_page_shows_each_node_with_its_status(tmp_path):
    node = tmp_path / "store" / "eval_circuit" / "abc123abc123"
    node.mkdir(parents=True)
    headline = {"metric": "gap", "value": 0.5, "ci_low": 0.2, "ci_high": 0.7, "null": 0.0, "claim": "top beats random", "claim_sign": 1}
    (node / HEADLINE_FILE).write_text(json.dumps(headline))
    pd.DataFrame({"k": [5, 10], "gap": [0.3, 0.5]}).to_parquet(node / "circuit.parquet")
    (node / "circuit.png").write_bytes(b"png")
    out = tmp_path / "results" / "sae_evals.md"
    out.parent.mkdir()
    write_report([("eval_circuit", "evals/circuit", node)], out, tmp_path / "results" / "sae_evals")
    page = out.read_text()
    assert "*reproduced*" in page and "abc123abc123" in page and "| 10 | 0.5 |" in page
    assert (tmp_path / "results" / "sae_evals" / "abc123abc123_circuit.png").read_bytes() == b"png"
    assert "*inconclusive*" in headline_line({**headline, "ci_low": -0.1})


def test_long_tables_are_cut_and_say_so():
    lines = markdown_table_lines(pd.DataFrame({"x": range(50)}), max_rows=10)
    assert len([line for line in lines if line.startswith("| ") and line[2].isdigit()]) == 10
    assert "40 more rows" in lines[-1]
