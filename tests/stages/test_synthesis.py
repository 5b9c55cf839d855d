"""Synthesis on hand-made upstream results: the verdicts follow the numbers, every
number names its node, a missing upstream result fails with its path."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from sae_difficulty.pipeline.runner import NodeContext
from sae_difficulty.reports.synthesis import verdicts
from sae_difficulty.stages import synthesis as stage
from sae_difficulty.utils.errors import InputError

RUNGS = ["P1", "P2", "P3", "P4", "P5"]


def ladder(aurocs: dict[str, float], delta: tuple, p: float = 0.3) -> dict:
    """``delta`` = (Δ, 95% low, 95% high[, 90% low, 90% high]); the 90% CI defaults to 0.8 of the 95% one."""
    table = [{"rung": r, "auroc": a, "auroc_ci_low": a - 0.05, "auroc_ci_high": a + 0.05} for r, a in aurocs.items()]
    ci90 = delta[3:] if len(delta) == 5 else (delta[0] + 0.8 * (delta[1] - delta[0]), delta[0] + 0.8 * (delta[2] - delta[0]))
    d = {"delta": delta[0], "ci_low": delta[1], "ci_high": delta[2], "ci90_low": ci90[0], "ci90_high": ci90[1],
         "p_paired_permutation": p, "p_label_permutation": p / 2, "p_delong": p}  # fmt: skip
    return {"table": table, "deltas": {"P3-P2": d, "P3-P1": d, "P5-P4": d}}


def write(directory: Path, name: str, obj: dict) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / f"{name}.json").write_text(json.dumps(obj))
    return directory


def selective_result(pct: float) -> dict:
    rc = {r: {"pct_oracle_captured": pct} for r in RUNGS}
    metrics = {v: {"ece": 0.1, "brier": 0.2} for v in ("before", "platt", "isotonic")}
    point = {"cost": 1.5, "error": 0.2, "frac_expensive": 0.2, "threshold": 0.5, "budget": 2.0}
    return {"headline_rung": "P3", "best_rung": "P3", "risk_coverage": rc, "calibration": {"metrics": metrics},
            "cascade": {"best_under_budget": [point], "always_cheap": {"error": 0.3}, "always_expensive": {"error": 0.1}}}  # fmt: skip


def causal_result(k_all: int, random_k: tuple[int, ...] | None = None) -> dict:
    """``random_k``: the k of each frequency-matched random set (None: no control, the original protocol)."""
    control = None
    if random_k is not None:
        control = {"n_sets": len(random_k), "k_random": list(random_k), "median": float(np.median(random_k)),
                   "p95": float(np.percentile(random_k, 95)),
                   "p_empirical": (1 + sum(k >= k_all for k in random_k)) / (1 + len(random_k))}  # fmt: skip
    return {"by_positions": {"all": {"n_significant": k_all, "n_features": 5, "control": control},
                             "last": {"n_significant": 0, "n_features": 5, "control": control}}}  # fmt: skip


def make_context(tmp_path: Path, columns: dict[str, dict]) -> NodeContext:
    parents, column_params = {}, []
    store = tmp_path / "store"
    for i, (name, spec) in enumerate(columns.items()):
        modality = name.split("_")[0]
        roles = {s: f"{name}__{s}" for s in ("probe", "selective", "causal")}
        aurocs = dict(zip(RUNGS, [0.6, 0.7, spec["p3"], 0.65, 0.6]))
        parents[roles["probe"]] = write(store / "probe" / f"{i:012d}", "probe",
                                        {"ladder": ladder(aurocs, spec["delta"]), "n_examples": 100, "n_difficult": 30})  # fmt: skip
        parents[roles["selective"]] = write(store / "selective" / f"{i:012d}", "selective", selective_result(spec["pct"]))
        parents[roles["causal"]] = write(store / "causal" / f"{i:012d}", "causal", causal_result(spec["k"], spec.get("random_k")))
        column_params.append({"name": name, "modality": modality, "dataset": name.split("_")[1], "roles": roles})
    quality = {"explained_variance": 0.9, "mean_l0": 8.0, "dead_fraction": 0.1, "spliced": {"delta_nats": 0.2, "fraction_recovered": 0.8}}
    parents["sae_quality__q1"] = write(store / "sae_quality" / "aaaaaaaaaaaa", "quality", quality)
    parents["sae_stability__s1"] = write(store / "sae_stability" / "bbbbbbbbbbbb", "stability", {"pwmcc_mean": 0.7, "random_mean": 0.3})
    params = {
        "name": "hand", "seed": 0, "stage_versions": {"synthesis": "1"},
        "primary": {"architecture": "topk", "expansion": 4, "seed": 0, "pooling": "last", "probe_mode": "cv",
                    "labels": {"quantile": 0.75, "scope": "dataset"}, "layers": {"llm": 1}},
        "verdicts": {"deployable_min_pct_oracle": 25.0, "equivalence_margin": 0.05}, "columns": column_params,
        "sae_rows": [{"role": "sae_quality__q1", "modality": "llm", "layer": 1, "architecture": "topk", "expansion": 4, "seed": 0}],
        "stability_rows": [{"role": "sae_stability__s1", "modality": "llm", "layer": 1, "architecture": "topk", "expansion": 4, "seeds": [0, 1]}],
        "sweep_rows": [],
    }  # fmt: skip
    out = tmp_path / "out"
    out.mkdir()
    return NodeContext({"stage": "synthesis", "params": params}, parents, out)


COLUMNS = {
    "llm_hellaswag": {"p3": 0.75, "delta": (0.01, -0.02, 0.04), "pct": 40.0, "k": 2, "random_k": (0, 0, 1, 0, 1)},
    "tsfm_etth1": {"p3": 0.72, "delta": (0.06, 0.02, 0.10), "pct": 10.0, "k": 0},
}


def test_verdicts_follow_the_numbers(tmp_path):
    ctx = make_context(tmp_path, COLUMNS)
    stage.build(ctx)
    markdown = (ctx.out / "cross_modal_synthesis.md").read_text()
    summary = markdown.split("## Summary")[1].split("##")[0]
    llm_line = next(line for line in summary.splitlines() if "**llm**" in line)
    tsfm_line = next(line for line in summary.splitlines() if "**tsfm**" in line)
    assert "equivalent within ±0.05" in llm_line and "a causal effect (2/5" in llm_line and "a deployable selective" in llm_line
    assert "SAE adds signal" in tsfm_line and "no causal effect" in tsfm_line
    assert "no deployable selective predictor" in tsfm_line
    assert "margin m = 0.05" in markdown and "margin ±0.05" in summary
    assert "null holds" not in markdown


RULES = {"deployable_min_pct_oracle": 25.0, "equivalence_margin": 0.02}


def verdict_for(delta: tuple, k: int = 0, random_k: tuple[int, ...] | None = None) -> dict:
    data = {"c": {"probe": {"ladder": ladder(dict(zip(RUNGS, [0.6] * 5)), delta)},
                  "selective": selective_result(30.0), "causal": causal_result(k, random_k)}}  # fmt: skip
    return verdicts(data, RULES)["c"]


def test_a_ci_spanning_zero_is_not_a_null_unless_it_sits_inside_the_margin():
    """Pins the equivalence rule: the old synthesis called any CI spanning 0 "the predictive null holds";
    now a wide CI spanning 0 is inconclusive and only a 90% CI inside ±m is equivalence."""
    assert verdict_for((0.03, -0.001, 0.06))["delta_verdict"] == "inconclusive"
    assert verdict_for((0.003, -0.012, 0.018, -0.009, 0.015))["delta_verdict"] == "equivalent within ±0.02"
    assert verdict_for((0.003, -0.012, 0.025, -0.009, 0.021))["delta_verdict"] == "inconclusive"
    assert verdict_for((0.03, 0.001, 0.06))["delta_verdict"] == "SAE adds signal"
    assert verdict_for((-0.03, -0.06, -0.001))["delta_verdict"] == "SAE worse"


def test_causal_effect_needs_k_above_the_random_sets():
    """Pins the causal control: k = 2/5 used to be "a causal effect" by itself; random sets that reach
    k = 2 or more at their 95th percentile make it no effect beyond the control."""
    assert verdict_for((0.0, -0.1, 0.1), k=2, random_k=(0, 0, 1, 0, 0))["causal_effect"]
    assert not verdict_for((0.0, -0.1, 0.1), k=2, random_k=(2, 3, 1, 2, 3))["causal_effect"]


def test_every_number_names_its_node_and_outputs_agree(tmp_path):
    ctx = make_context(tmp_path, COLUMNS)
    stage.build(ctx)
    markdown = (ctx.out / "cross_modal_synthesis.md").read_text()
    table_rows = [line for line in markdown.splitlines() if line.startswith("| P3 cheap+SAE AUROC")]
    assert table_rows and table_rows[0].count("[^") == 2
    for node in ("000000000000", "000000000001", "aaaaaaaaaaaa", "bbbbbbbbbbbb"):
        assert f"node `{node}`" in markdown
    frame = pd.read_parquet(ctx.out / "cross_modal_synthesis.parquet")
    p3 = frame[(frame["row"] == "P3 cheap+SAE AUROC") & (frame["column"] == "tsfm_etth1")]
    assert p3["value"].item() == pytest.approx(0.72) and p3["node_id"].item() == "000000000001"
    detail = json.loads((ctx.out / "cross_modal_synthesis.json").read_text())
    assert detail["verdicts"]["llm_hellaswag"]["delta_verdict"] == "equivalent within ±0.05"
    assert "equivalent within ±0.05" in markdown and "random sets: 0.0, 1.0" in markdown


def test_same_inputs_give_byte_identical_outputs(tmp_path):
    first, second = make_context(tmp_path / "a", COLUMNS), make_context(tmp_path / "b", COLUMNS)
    stage.build(first)
    stage.build(second)
    for name in ("cross_modal_synthesis.md", "cross_modal_synthesis.json", "cross_modal_synthesis.parquet"):
        assert (first.out / name).read_bytes() == (second.out / name).read_bytes()


def test_missing_upstream_result_names_it(tmp_path):
    ctx = make_context(tmp_path, COLUMNS)
    (ctx.parents["tsfm_etth1__causal"] / "causal.json").unlink()
    with pytest.raises(InputError, match=r"missing upstream result .*causal/000000000001/causal.json"):
        stage.build(ctx)


def test_paper_reports_the_original_labels_with_the_leakage_free_ones_as_a_robustness_row():
    """Issue 17 item 1, as issue 18 sets it for the original study: the demo and ci configs' headline
    probes use train-scope (leakage-free) labels; config/paper.yaml, the original protocol, uses the
    original whole-dataset threshold and adds, per dataset, the same headline probe with the
    project's train-scope labels, shown among the synthesis' robustness rows."""
    import yaml

    from sae_difficulty.pipeline.config import validate_config
    from sae_difficulty.pipeline.study import build_plan

    for name in ("config", "ci", "paper"):
        plan = build_plan(validate_config(yaml.safe_load(open(f"config/{name}.yaml"))))
        headline = "dataset" if name == "paper" else "train"
        assert {column.probe.params["labels"]["scope"] for column in plan.columns} == {headline}
        robustness = [row for row in plan.synthesis.params["sweep_rows"] if row["label_scope"] != headline]
        assert len(robustness) == (len(plan.columns) if name == "paper" else 0)


def members_result(delta: float, ci: tuple[float, float], accuracy: dict | None, block_length: int | None) -> dict:
    cheap = 0.6
    members = {"n": 100, "cheap_mean": cheap, "expensive_mean": cheap + delta, "delta": delta, "delta_ci_low": ci[0],
               "delta_ci_high": ci[1], "relative": delta / cheap, "relative_ci_low": ci[0] / cheap,
               "relative_ci_high": ci[1] / cheap, "expensive_better": ci[1] < 0, "n_boot": 100,
               "block_length": block_length, "seed": 0}  # fmt: skip
    if accuracy is not None:
        members["accuracy"] = accuracy
    return members


def test_member_comparison_and_accuracy_sit_beside_the_cascade_row(tmp_path):
    ctx = make_context(tmp_path, COLUMNS)
    store = tmp_path / "store" / "selective"
    planted = {"000000000000": members_result(-0.08, (-0.12, -0.04), {"cheap": 0.4, "expensive": 0.48, "chance": 0.25}, None),
               "000000000001": members_result(-0.01, (-0.05, 0.03), None, 14)}  # fmt: skip
    for node, members in planted.items():
        result = json.loads((store / node / "selective.json").read_text())
        result["cascade"]["members"] = members
        (store / node / "selective.json").write_text(json.dumps(result))
    stage.build(ctx)
    lines = (ctx.out / "cross_modal_synthesis.md").read_text().splitlines()
    cascade_at = next(i for i, line in enumerate(lines) if line.startswith("| cascade: best point under budget"))
    members_line, accuracy_line = lines[cascade_at + 1], lines[cascade_at + 2]
    assert members_line.startswith("| cascade: expensive − cheap mean error")
    assert "-0.080 [-0.120, -0.040]" in members_line and "-13.3 %" in members_line and "i.i.d." in members_line
    assert "blocks of 14" in members_line and "[-0.050, +0.030]" in members_line
    assert accuracy_line.startswith("| accuracy: cheap / expensive (chance)") and "0.400 / 0.480 (chance 0.25)" in accuracy_line
    frame = pd.read_parquet(ctx.out / "cross_modal_synthesis.parquet")
    row = frame[(frame["row"] == "cascade: expensive − cheap mean error [95% CI] (relative)") & (frame["column"] == "llm_hellaswag")]
    assert row["ci_high"].item() == pytest.approx(-0.04)


def positions_result(k_last: int, k_all: int, random_k: tuple[int, ...]) -> dict:
    """A causal.json with its own k at each patch mode (``causal_result`` plants k at all positions only)."""
    result = causal_result(k_all, random_k)
    result["by_positions"]["last"] = causal_result(k_last, random_k)["by_positions"]["all"]
    return result


def test_the_2x2_disentanglement_puts_each_sae_and_patch_in_its_cell(tmp_path):
    """llm.causal.disentangle: the boundary-SAE and the all-position-SAE causal nodes of a dataset,
    with four distinct planted k, land as SAE (rows) x patched positions (columns), each cell naming
    its node; without the rows (every config but the original study) the section is absent."""
    ctx = make_context(tmp_path, COLUMNS)
    stage.build(ctx)
    assert "Causal disentanglement" not in (ctx.out / "cross_modal_synthesis.md").read_text()

    ctx = make_context(tmp_path / "with", COLUMNS)
    allpos_dir = write(tmp_path / "with" / "store" / "causal" / "cccccccccccc", "causal", positions_result(4, 3, (0, 1, 1, 0, 2)))
    boundary_dir = ctx.parents["llm_hellaswag__causal"]
    (boundary_dir / "causal.json").write_text(json.dumps(positions_result(1, 2, (0, 0, 1, 0, 1))))
    ctx.parents["llm_hellaswag__causal_allpos_sae"] = allpos_dir
    ctx.params["disentangle_rows"] = [{"column": "llm_hellaswag", "boundary_sae": "llm_hellaswag__causal",
                                       "allpos_sae": "llm_hellaswag__causal_allpos_sae"}]  # fmt: skip
    stage.build(ctx)
    markdown = (ctx.out / "cross_modal_synthesis.md").read_text()
    section = markdown.split("## Causal disentanglement")[1].split("\n## ")[0]
    header = next(line for line in section.splitlines() if line.startswith("| llm_hellaswag |"))
    assert header.index("boundary patch") < header.index("all-position patch")
    boundary = next(line for line in section.splitlines() if line.startswith("| boundary SAE"))
    allpos = next(line for line in section.splitlines() if line.startswith("| all-position SAE"))
    assert [cell.split(" (")[0] for cell in boundary.split(" | ")[1:]] == ["1/5", "2/5"]
    assert [cell.split(" (")[0] for cell in allpos.split(" | ")[1:]] == ["4/5", "3/5"]
    assert "random sets: 1.0, 1.8; p 0.167, 5 sets" in allpos  # the all-position SAE's own control
    assert "no evidence of an effect, not evidence of no effect" in section
    assert "node `cccccccccccc`" in markdown
    frame = pd.read_parquet(ctx.out / "cross_modal_synthesis.parquet")
    cells = frame[frame["section"] == "causal_disentanglement llm_hellaswag"]
    planted = {(row, column[:8]): (value, node) for row, column, value, node in
               cells[["row", "column", "value", "node_id"]].itertuples(index=False)}  # fmt: skip
    assert planted == {
        ("boundary SAE (fitted to the last prompt token)", "boundary"): (1, boundary_dir.name),
        ("boundary SAE (fitted to the last prompt token)", "all-posi"): (2, boundary_dir.name),
        ("all-position SAE (fitted to every prompt position)", "boundary"): (4, "cccccccccccc"),
        ("all-position SAE (fitted to every prompt position)", "all-posi"): (3, "cccccccccccc"),
    }
