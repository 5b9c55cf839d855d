"""Stage `selective`: risk-coverage per rung (Q3), calibration, and the cascade (Q4)."""

from __future__ import annotations

import pandas as pd

from sae_difficulty.core.calibration import calibration_report
from sae_difficulty.core.cascade import cascade_report
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
from sae_difficulty.utils.io import write_experiment

HEADLINE_RUNG = "P3"


def _errors_for(ids: pd.Series, evaluation_dir, role: str) -> pd.Series:
    evaluation = read_table(evaluation_dir / EVALUATION, f"{role} evaluation table").set_index("id")
    missing = set(ids) - set(evaluation.index)
    if missing:
        raise InputError(f"{evaluation_dir}: {len(missing)} scored examples missing from the {role} evaluation")
    return evaluation.loc[list(ids), "error"].astype(float)


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
    cheap_error = _errors_for(scores["id"], ctx.parent("cheap"), "cheap")
    expensive_error = _errors_for(scores["id"], ctx.parent("expensive"), "expensive")
    cascade = cascade_report(
        scores[HEADLINE_RUNG].to_numpy(), cheap_error.to_numpy(), expensive_error.to_numpy(),
        cost_cheap=cascade_cfg["cost_cheap"], cost_expensive=cascade_cfg["cost_expensive"], budgets=[cascade_cfg["budget"]],
    )  # fmt: skip
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
