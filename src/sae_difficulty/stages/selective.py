"""Stage `selective`: risk-coverage per rung (Q3), calibration, and the cascade (Q4).

The cascade only routes meaningfully when its expensive member is better than its cheap
one on the same examples, so the result also holds that paired comparison
(:func:`~sae_difficulty.core.cascade.paired_error_difference`), resampled as the probe
resampled (its ``n_boot``; blocks of its ``block_length`` for time-ordered windows), and
each member's accuracy beside chance where the task has one (multiple choice).
"""

from __future__ import annotations

import re

import pandas as pd

from sae_difficulty.core.calibration import calibration_report
from sae_difficulty.core.cascade import cascade_report, paired_error_difference
from sae_difficulty.core.probe import RUNGS
from sae_difficulty.core.selective import risk_coverage
from sae_difficulty.pipeline.artifacts import EVALUATION, read_table
from sae_difficulty.pipeline.runner import NodeContext
from sae_difficulty.reports.figures import (
    plot_cascade,
    plot_reliability,
    plot_risk_coverage,
)
from sae_difficulty.stages.probe import SCORES
from sae_difficulty.utils.errors import InputError
from sae_difficulty.utils.io import read_json, write_experiment

HEADLINE_RUNG = "P3"
#: Per-choice log-likelihood columns of a multiple-choice evaluation (HellaSwag: ll_norm_0..3).
_CHOICE_COLUMN = re.compile(r"ll_norm_\d+")


def _scored_rows(ids: pd.Series, evaluation_dir, role: str) -> pd.DataFrame:
    evaluation = read_table(evaluation_dir / EVALUATION, f"{role} evaluation table").set_index("id")
    missing = set(ids) - set(evaluation.index)
    if missing:
        raise InputError(f"{evaluation_dir}: {len(missing)} scored examples missing from the {role} evaluation")
    return evaluation.loc[list(ids)]


def chance_accuracy(evaluation: pd.DataFrame) -> float | None:
    """1 / number of choices for a multiple-choice evaluation (one ``ll_norm_<j>`` column per
    choice); None when the task has no chance level (free generation, forecasts)."""
    n_choices = sum(bool(_CHOICE_COLUMN.fullmatch(str(column))) for column in evaluation.columns)
    return 1.0 / n_choices if n_choices >= 2 else None


def member_comparison(cheap: pd.DataFrame, expensive: pd.DataFrame, probe_settings: dict, seed: int) -> dict:
    """Expensive vs cheap on the scored examples (paired bootstrap as the probe resampled) and accuracies."""
    block_length = probe_settings.get("block_length") if probe_settings.get("resampling") == "block" else None
    comparison = paired_error_difference(
        cheap["error"].to_numpy(dtype=float), expensive["error"].to_numpy(dtype=float),
        n_boot=int(probe_settings.get("n_boot", 2000)), seed=seed, block_length=block_length,
    )  # fmt: skip
    if "correct" in cheap.columns and "correct" in expensive.columns:
        comparison["accuracy"] = {
            "cheap": float(cheap["correct"].mean()),
            "expensive": float(expensive["correct"].mean()),
            "chance": chance_accuracy(cheap),
        }
    return comparison


def build(ctx: NodeContext) -> None:
    params = ctx.params
    scores = read_table(ctx.parent("probe") / SCORES, "probe scores")
    error = scores["error"].to_numpy(dtype=float)
    selective = {rung: risk_coverage(scores[rung].to_numpy(), error) for rung in RUNGS}
    best_rung = max(RUNGS, key=lambda rung: (selective[rung]["pct_oracle_captured"], rung))
    calibration = calibration_report(
        scores["y"].to_numpy(), scores[HEADLINE_RUNG].to_numpy(),
        n_bins=params["calibration"]["n_bins"], folds=params["calibration"]["folds"], seed=params["seed"],
    )  # fmt: skip
    cascade_cfg = params["cascade"]
    cheap = _scored_rows(scores["id"], ctx.parent("cheap"), "cheap")
    expensive = _scored_rows(scores["id"], ctx.parent("expensive"), "expensive")
    cascade = cascade_report(
        scores[HEADLINE_RUNG].to_numpy(), cheap["error"].to_numpy(dtype=float), expensive["error"].to_numpy(dtype=float),
        cost_cheap=cascade_cfg["cost_cheap"], cost_expensive=cascade_cfg["cost_expensive"], budgets=[cascade_cfg["budget"]],
    )  # fmt: skip
    probe_settings = read_json(ctx.parent("probe") / "probe.json")["ladder"]["settings"]
    cascade["members"] = member_comparison(cheap, expensive, probe_settings, params["seed"])
    table = pd.DataFrame([
        {"rung": rung, "aurc": selective[rung]["aurc"], "oracle_aurc": selective[rung]["oracle_aurc"],
         "random_aurc": selective[rung]["random_aurc"], "pct_oracle_captured": selective[rung]["pct_oracle_captured"]}
        for rung in RUNGS
    ])  # fmt: skip
    detail = {
        "headline_rung": HEADLINE_RUNG,
        "best_rung": best_rung,
        "risk_coverage": selective,
        "calibration": calibration,
        "cascade": cascade,
    }
    write_experiment(ctx.out, "selective", detail, table)
    plot_risk_coverage({rung: selective[rung] for rung in RUNGS}, ctx.out / "risk_coverage.png", "Risk-coverage by rung")
    plot_reliability(calibration, ctx.out / "reliability.png", f"Reliability of {HEADLINE_RUNG} before/after recalibration")
    plot_cascade(cascade, ctx.out / "cascade.png", "Cheap-to-expensive cascade")
