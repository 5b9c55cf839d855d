"""Meta-structure evaluation on planted dictionaries.

Planted: every decoder row is a positive combination of 2 of 8 unit meta-directions in
d = 16, so a TopK meta-SAE (16 meta-latents, k = 2) reconstructs the rows almost exactly,
while the same recipe on random unit rows explains about half their variance. A
dictionary of random rows has no meta-structure: its difference from the baseline is ~0.
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch
from sae_lens import StandardSAE, StandardSAEConfig

from sae_difficulty.evals import meta_structure as ms
from sae_difficulty.pipeline.artifacts import SAE_DIR
from sae_difficulty.pipeline.runner import NodeContext
from sae_difficulty.reports.evals_report import write_report
from sae_difficulty.reports.ledger import HEADLINE_FILE, ledger_status, node_headline
from sae_difficulty.stages import eval_meta_structure
from sae_difficulty.utils.errors import InputError
from tests.evals.schema_checks import assert_schema_accepts

D_IN, N_META, N_ROWS = 16, 8, 256
CONFIG = ms.MetaStructureConfig(expansion=1, k=2, epochs=100, batch_size=32, n_boot=200)


def planted_rows(seed: int = 0) -> np.ndarray:
    """Rows that are sparse (2 of 8) positive combinations of a few meta-directions."""
    rng = np.random.default_rng(seed)
    meta = rng.standard_normal((N_META, D_IN))
    meta /= np.linalg.norm(meta, axis=1, keepdims=True)
    rows = np.zeros((N_ROWS, D_IN))
    for i in range(N_ROWS):
        rows[i] = rng.uniform(0.5, 1.5, size=2) @ meta[rng.choice(N_META, size=2, replace=False)]
    return rows


@pytest.fixture(scope="module")
def planted() -> ms.MetaStructureResult:
    return ms.evaluate_meta_structure(planted_rows(), CONFIG)


def test_planted_meta_structure_is_explained_and_random_rows_are_not(planted):
    fits = {fit["rows"]: fit for fit in planted.to_dict()["fits"]}
    assert fits["decoder"]["explained_variance"] > 0.9
    assert fits["random"]["explained_variance"] < 0.6
    assert fits["decoder"]["mean_l0"] <= CONFIG.k and fits["random"]["mean_l0"] <= CONFIG.k
    line = ms.headline(planted)
    assert line["metric"] == "meta_sae_explained_variance_decoder_minus_random" and line["null"] == 0.0
    assert line["ci_low"] > 0.3 and line["ci_low"] <= line["value"] <= line["ci_high"]
    assert "Bussmann" in line["claim"]


def test_a_dictionary_without_meta_structure_is_on_par_with_random():
    rows = np.random.default_rng(7).standard_normal((N_ROWS, D_IN))
    line = ms.headline(ms.evaluate_meta_structure(rows, CONFIG))
    assert abs(line["value"]) < 0.1


def test_generated_schema_table_determinism_and_plot(planted, tmp_path):
    payload = planted.to_dict()
    assert_schema_accepts(ms.MetaStructureOutput, payload)
    assert payload["n_rows"] == N_ROWS and payload["d_in"] == D_IN and payload["n_meta_latents"] == D_IN
    table = planted.table()
    assert list(table["rows"]) == ["decoder", "random", "difference"]
    assert table.loc[2, "explained_variance"] == pytest.approx(payload["difference"]["value"])
    again = ms.evaluate_meta_structure(planted_rows(), CONFIG).to_dict()
    assert json.dumps(again, sort_keys=True) == json.dumps(payload, sort_keys=True)
    assert ms.plot_meta_structure(planted, tmp_path / "meta_structure.png").stat().st_size > 1000


def test_bad_inputs_are_one_line_errors():
    with pytest.raises(InputError, match=r"sae_evals.meta_structure.k: expected an integer >= 1, got 0"):
        ms.MetaStructureConfig(k=0)
    with pytest.raises(InputError, match=r"sae_evals.meta_structure: unknown key\(s\) \['epoch'\]"):
        ms.MetaStructureConfig.from_dict({"epoch": 3})
    with pytest.raises(InputError, match="batch_size: expected at most the 8 decoder rows"):
        ms.evaluate_meta_structure(planted_rows()[:8], CONFIG)
    with pytest.raises(InputError, match="non-zero rows"):
        ms.evaluate_meta_structure(np.zeros((40, D_IN)), CONFIG)


def test_stage_writes_a_node_the_report_and_ledger_read(tmp_path):
    """The stage on a saved SAE whose decoder is the planted dictionary: every file, validated, and the
    report page and ledger headline built from them."""
    sae_node = tmp_path / "store" / "sae" / "aaaaaaaaaaaa"
    sae = StandardSAE(StandardSAEConfig(d_in=D_IN, d_sae=N_ROWS))
    with torch.no_grad():
        sae.W_dec.copy_(torch.from_numpy(planted_rows()).float())
    sae.save_model(sae_node / SAE_DIR)
    out = tmp_path / "store" / "eval_meta_structure" / "bbbbbbbbbbbb"
    params = {"layer": 0, "seed": 0, "expansion": 1, "k": 2, "lr": 0.003, "epochs": 100, "batch_size": 32, "n_boot": 200}
    ctx = NodeContext(spec={"stage": "eval_meta_structure", "params": params}, parents={"sae": sae_node}, out=out)
    eval_meta_structure.build(ctx)
    document = json.loads((out / "meta_structure.json").read_text())
    assert_schema_accepts(ms.MetaStructureOutput, document)
    headline = json.loads((out / HEADLINE_FILE).read_text())
    assert headline["claim_sign"] == 1 and headline["ci_low"] > 0.3
    assert node_headline("eval_meta_structure", out) == headline
    assert ledger_status(headline["value"], headline["ci_low"], headline["ci_high"], headline["null"], 1) == "reproduced"
    assert len(pd.read_parquet(out / "meta_structure.parquet")) == 3 and (out / "meta_structure.png").is_file()
    page = tmp_path / "sae_evals.md"
    write_report([("eval_meta_structure", "evals/L0/meta_structure", out)], page, tmp_path / "sae_evals")
    text = page.read_text()
    assert "## Meta-structure" in text and "meta_sae_explained_variance_decoder_minus_random" in text
    assert "→ *reproduced*" in text  # CI above the null, on the side the cited claim predicts
