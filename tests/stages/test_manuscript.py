"""The manuscript view's store readers: figure panels copied under TeX-safe names with their
nodes, and evaluation headlines in the suite's order with the ledger's status."""

from __future__ import annotations

import pytest

from sae_difficulty.reports.ledger import HEADLINE_FILE
from sae_difficulty.stages.manuscript import eval_headlines, figure_panels, safe_name
from sae_difficulty.utils.errors import InputError
from sae_difficulty.utils.io import write_json

PROBE = {"llm_hellaswag": "111111111111", "tsfm_etth1": "222222222222"}


def synthesis() -> dict:
    return {"main": [{"row": "P3 cheap+SAE AUROC", "column": column, "stage": "probe", "node_id": node}
                     for column, node in PROBE.items()]}  # fmt: skip


def test_figures_become_panels_with_their_probe_nodes(tmp_path):
    node = tmp_path / "synthesis" / "abcdefabcdef"
    (node / "figures").mkdir(parents=True)
    for column in PROBE:
        (node / "figures" / f"{column}__probe__ladder.png").write_bytes(b"png " + column.encode())
    # a selective figure of a column with no selective node in the table is not a panel
    (node / "figures" / "llm_hellaswag__selective__cascade.png").write_bytes(b"png")
    out = tmp_path / "paper" / "generated"
    panels = figure_panels(synthesis(), node, out)
    assert set(panels) == {"ladder"}
    assert [(p.column, p.node_id) for p in panels["ladder"]] == list(PROBE.items())
    for panel in panels["ladder"]:
        assert panel.path.startswith("generated/figures/") and "_" not in panel.path.removeprefix("generated/")
        assert (tmp_path / "paper" / panel.path).read_bytes() == b"png " + panel.column.encode()


def test_safe_names_hold_no_tex_specials():
    assert safe_name("my_run 100% & more") == "my-run-100-more"


def test_eval_headlines_follow_the_suite_order_with_their_status(tmp_path):
    store = tmp_path / "store"
    nodes = [{"stage": "eval_circuit", "key": "llm/L1/circuit", "node": "c" * 12},
             {"stage": "eval_cross_domain", "key": "llm/L1/cross_domain", "node": "d" * 12}]  # fmt: skip
    # circuit: CI above its null of 0 and on the claimed side; cross-domain: CI straddles the null
    write_json(store / "eval_circuit" / ("c" * 12) / HEADLINE_FILE,
               {"metric": "faithfulness gap", "value": 0.3, "ci_low": 0.2, "ci_high": 0.4, "null": 0.0, "claim_sign": 1})  # fmt: skip
    write_json(store / "eval_cross_domain" / ("d" * 12) / HEADLINE_FILE,
               {"metric": "transfer gap", "value": 0.01, "ci_low": -0.1, "ci_high": 0.1, "null": 0.0, "claim_sign": 0})  # fmt: skip
    headlines = eval_headlines(store, nodes)
    assert [h.stage for h in headlines] == ["eval_cross_domain", "eval_circuit"]
    assert headlines[0].status != headlines[1].status
    assert headlines[1].node_id == "c" * 12 and headlines[1].value == 0.3


def test_a_missing_headline_names_the_node(tmp_path):
    with pytest.raises(InputError, match="eval_steering"):
        eval_headlines(tmp_path, [{"stage": "eval_steering", "key": "k", "node": "e" * 12}])
