"""Stage selective: risk-coverage per rung, calibration and the cascade on planted probe scores.
P3 ranks the examples exactly by their error (an oracle), the other rungs are noise (all are probabilities)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import node_context

from sae_difficulty.pipeline.artifacts import EVALUATION
from sae_difficulty.stages import selective
from sae_difficulty.stages.probe import SCORES
from sae_difficulty.utils.errors import InputError
from sae_difficulty.utils.io import read_json, write_json

N = 300
PARAMS = {"seed": 0, "calibration": {"n_bins": 10, "folds": 5},
          "cascade": {"cost_cheap": 1.0, "cost_expensive": 4.0, "budget": 2.0}}  # fmt: skip


IID_SETTINGS = {"n_boot": 1000, "resampling": "iid", "block_length": 1}


def planted_parents(root: Path, drop_from_cheap: int = 0, expensive: str = "better", settings: dict | None = None,
                    multiple_choice: bool = False) -> dict[str, Path]:  # fmt: skip
    """Probe scores and the two members' evaluations. ``expensive``: "better" (half the cheap
    error on every example) or "equal" (the cheap errors shuffled: the same mean, no paired gain)."""
    rng = np.random.default_rng(0)
    ids = [f"ex-{i:04d}" for i in range(N)]
    error = rng.exponential(1.0, N)
    y = (error > np.quantile(error, 0.75)).astype(int)
    noise = {rung: rng.uniform(size=N) for rung in ("P1", "P2", "P4", "P5")}
    oracle = (np.argsort(np.argsort(error)) + 0.5) / N  # a probability in the error's order
    scores = pd.DataFrame({"id": ids, "y": y, "error": error, **noise, "P3": oracle})
    parents = {role: root / role for role in ("probe", "cheap", "expensive")}
    for directory in parents.values():
        directory.mkdir(parents=True)
    scores.to_parquet(parents["probe"] / SCORES)
    write_json(parents["probe"] / "probe.json", {"ladder": {"settings": settings or IID_SETTINGS}})
    expensive_error = 0.5 * error if expensive == "better" else rng.permutation(error)  # "better": the large model errs less
    cheap_table = pd.DataFrame({"id": ids, "error": error})
    expensive_table = pd.DataFrame({"id": ids, "error": expensive_error})
    if multiple_choice:  # binary errors and one log-likelihood column per choice, as the LM's HellaSwag evaluation
        cheap_table["error"] = (error > np.quantile(error, 0.4)).astype(float)
        expensive_table["error"] = (expensive_error > np.quantile(error, 0.4)).astype(float)
        for table in (cheap_table, expensive_table):
            table["correct"] = 1.0 - table["error"]
            for choice in range(4):
                table[f"ll_norm_{choice}"] = rng.normal(size=N)
    cheap_table.iloc[drop_from_cheap:].to_parquet(parents["cheap"] / EVALUATION)
    expensive_table.to_parquet(parents["expensive"] / EVALUATION)
    return parents


def build_selective(root: Path, **planted) -> dict:
    ctx = node_context("selective", PARAMS, root / "s00000000000", planted_parents(root / "parents", **planted))
    selective.build(ctx)
    return read_json(ctx.out / "selective.json")["cascade"]["members"]


@pytest.fixture(scope="module")
def selective_node(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("selective")
    ctx = node_context("selective", PARAMS, root / "s00000000000", planted_parents(root / "parents"))
    selective.build(ctx)
    return ctx.out


def test_the_oracle_rung_captures_the_oracle_gain_and_noise_does_not(selective_node: Path) -> None:
    detail = read_json(selective_node / "selective.json")
    table = pd.read_parquet(selective_node / "selective.parquet").set_index("rung")
    assert detail["best_rung"] == "P3" and detail["headline_rung"] == "P3"
    assert table.loc["P3", "pct_oracle_captured"] == pytest.approx(100.0)
    assert table.loc["P3", "aurc"] == pytest.approx(table.loc["P3", "oracle_aurc"])
    for rung in ("P1", "P2", "P4", "P5"):
        assert abs(table.loc[rung, "pct_oracle_captured"]) < 40, rung
    assert set(detail) >= {"risk_coverage", "calibration", "cascade"}


def test_cascade_and_figures_are_written(selective_node: Path) -> None:
    cascade = read_json(selective_node / "selective.json")["cascade"]
    assert cascade["always_expensive"]["error"] == pytest.approx(0.5 * cascade["always_cheap"]["error"])
    best = cascade["best_under_budget"][0]
    # routing the riskiest examples (by an oracle score) to the expensive model beats always-cheap
    assert best["error"] < cascade["always_cheap"]["error"]
    for name in ("risk_coverage.png", "reliability.png", "cascade.png"):
        assert (selective_node / name).read_bytes()[:4] == b"\x89PNG", name


def test_examples_missing_from_an_evaluation_are_refused(tmp_path: Path) -> None:
    parents = planted_parents(tmp_path / "parents", drop_from_cheap=3)
    with pytest.raises(InputError, match="3 scored examples missing from the cheap evaluation"):
        selective.build(node_context("selective", PARAMS, tmp_path / "s00000000000", parents))


def test_a_better_expensive_member_has_a_paired_ci_below_zero(selective_node: Path) -> None:
    members = read_json(selective_node / "selective.json")["cascade"]["members"]
    assert members["relative"] == pytest.approx(-0.5)
    assert members["delta_ci_high"] < 0 and members["expensive_better"]
    assert members["block_length"] is None and members["n_boot"] == IID_SETTINGS["n_boot"]
    assert "accuracy" not in members  # continuous errors: no accuracy, no chance level


def test_equal_members_have_a_paired_ci_covering_zero(tmp_path: Path) -> None:
    members = build_selective(tmp_path, expensive="equal")
    assert members["delta"] == pytest.approx(0.0)
    assert members["delta_ci_low"] < 0 < members["delta_ci_high"] and not members["expensive_better"]


def test_time_ordered_probe_resampling_is_reused_as_blocks(tmp_path: Path) -> None:
    members = build_selective(tmp_path, settings={"n_boot": 500, "resampling": "block", "block_length": 14})
    assert members["block_length"] == 14 and members["n_boot"] == 500


def test_multiple_choice_accuracy_is_reported_beside_chance(tmp_path: Path) -> None:
    members = build_selective(tmp_path, multiple_choice=True)
    accuracy = members["accuracy"]
    assert accuracy["chance"] == pytest.approx(0.25)
    assert accuracy["expensive"] > accuracy["cheap"] == pytest.approx(0.4, abs=0.01)
    assert members["delta"] == pytest.approx(accuracy["cheap"] - accuracy["expensive"])
