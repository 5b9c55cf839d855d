"""The run ledger: the status rule, one row per result node with its headline, and the markdown page."""

from __future__ import annotations

import json

import pytest

from sae_difficulty.pipeline.plan import Plan
from sae_difficulty.pipeline.store import MANIFEST, build_manifest
from sae_difficulty.reports.ledger import (
    HEADLINE_FILE,
    describe_node,
    ledger_markdown,
    ledger_rows,
    ledger_status,
)
from sae_difficulty.utils.errors import InputError

VERSIONS = {"backbone": "1", "sae_activations": "1", "sae": "1", "eval_circuit": "1", "sae_quality": "1"}


@pytest.mark.parametrize(
    ("ci", "claim_sign", "expected"),
    [
        ((0.1, 0.3), +1, "reproduced"),
        ((-0.3, -0.1), -1, "reproduced"),
        ((0.1, 0.3), 0, "novel"),
        ((-0.3, -0.1), +1, "novel (contradicts claim)"),
        ((-0.1, 0.3), +1, "inconclusive"),
        ((None, None), +1, "inconclusive"),
    ],
)
def test_status_rule(ci, claim_sign, expected):
    assert ledger_status(0.2, ci[0], ci[1], 0.0, claim_sign) == expected


def test_status_without_a_null_is_inconclusive():
    assert ledger_status(0.9, 0.8, 1.0, None, +1) == "inconclusive"


def _write_node(store, node, files: dict[str, object], wall_time_s: float = 1.5):
    directory = store / node.stage / node.id
    directory.mkdir(parents=True)
    for name, content in files.items():
        (directory / name).write_text(json.dumps(content))
    (directory / MANIFEST).write_text(json.dumps(build_manifest(directory, node.id, node.stage, wall_time_s)))


@pytest.fixture
def store_with_results(tmp_path):
    plan = Plan(VERSIONS)
    backbone = plan.add("backbone", "llm/small", {"modality": "llm", "size": "small", "d_model": 48, "n_layers": 2})
    acts = plan.add("sae_activations", "llm/L1/activations", {"layer": 1}, {"backbone": backbone})
    sae = plan.add("sae", "llm/L1/topk", {"training_tokens": 65536, "architecture": "topk"}, {"activations": acts})
    circuit = plan.add("eval_circuit", "evals/circuit", {"layers": [0, 1], "seed": 0, "n_random": 3},
                       {"backbone": backbone, "sae_L1": sae})  # fmt: skip
    quality = plan.add("sae_quality", "llm/L1/topk/quality", {"layer": 1, "seed": 0},
                       {"sae": sae, "activations": acts, "backbone": backbone})  # fmt: skip
    store = tmp_path / "store"
    headline = {"metric": "faithfulness gap", "value": 0.4, "ci_low": 0.2, "ci_high": 0.6, "null": 0.0,
                "claim": "top features beat random", "claim_sign": 1}  # fmt: skip
    _write_node(store, circuit, {HEADLINE_FILE: headline}, wall_time_s=12.0)
    _write_node(store, quality, {"quality.json": {"explained_variance": 0.83}})
    return plan, store, circuit, quality


def test_rows_carry_provenance_headline_and_status(store_with_results):
    plan, store, circuit, quality = store_with_results
    table = ledger_rows([describe_node(circuit), describe_node(quality)], store)
    assert list(table["stage"]) == ["eval_circuit", "sae_quality"]
    row = table.iloc[0]
    assert row["node"] == circuit.id and row["status"] == "reproduced" and row["wall_time_s"] == 12.0
    assert row["model"] == "demo llm small d48×2"
    assert row["hook_point"] == "blocks.0.hook_resid_post, blocks.1.hook_resid_post"
    assert row["sae_tokens"] == 65536 and "n_random=3" in row["params"]
    assert table.iloc[1]["value"] == 0.83 and table.iloc[1]["status"] == "inconclusive"
    page = ledger_markdown(table, "demo")
    assert circuit.id in page and "reproduced: 1" in page and "top features beat random" in page


def test_unbuilt_node_is_a_one_line_error(store_with_results):
    plan, store, circuit, _ = store_with_results
    other = plan.add("eval_circuit", "evals/other", {"layers": [1], "seed": 1}, {})
    with pytest.raises(InputError, match="not built"):
        ledger_rows([describe_node(other)], store)
