"""The report, figures, ledger line and views of the ground-truth (synthetic) study.

Works on the ``ground_truth`` node's detail dict and tables (no model, no torch):
:func:`markdown` (``ground_truth.md``), :func:`write_figures` (MCC vs L0 per recipe;
stability vs recovery per feature), :func:`headline` (the ledger line), :func:`publish`
(the ``ground_truth_report`` view rule) and :func:`synthesis_rows` (the synthesis' SAE
section). Every number is stated with the hidden size, the number of true features, the
L0 and the training tokens it was measured at.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from scipy.stats import spearmanr

from sae_difficulty.utils.io import read_json
from sae_difficulty.utils.markdown import markdown_table_lines
from sae_difficulty.utils.plotting import new_figure, save_figure

REPORT = "ground_truth.md"
DETAIL = "answer.json"
TABLE = "answer.parquet"
FIGURES = "figures"
COLORS = {"topk": "tab:blue", "batchtopk": "tab:green", "relu": "tab:red"}
MAX_SCATTER_POINTS = 6000


def settings(params: dict[str, Any], model: dict[str, Any], activations: dict[str, Any]) -> dict[str, Any]:
    """What every number of the study was measured at (model, data, SAE budget)."""
    return {
        "hidden_dim": int(model["hidden_dim"]), "num_features": int(model["num_features"]),
        "true_l0": float(activations["train"]["true_l0"]), "train_rows": int(activations["train"]["rows"]),
        "heldout_rows": int(activations["heldout"]["rows"]), "training_tokens": int(params["training_tokens"]),
        "mean_max_abs_cosine": float(model["mean_max_abs_cosine"]), "preset": params.get("preset", "none"),
        "stable_threshold": float(params["stable_threshold"]), "true_threshold": float(params["true_threshold"]),
    }  # fmt: skip


def across_cells(table: pd.DataFrame) -> dict[str, Any]:
    """Do the more stable recipe cells also recover more? Spearman of PWMCC vs MCC over cells (descriptive)."""
    if len(table) < 3:
        return {"spearman_pwmcc_mcc": None, "n_cells": len(table)}
    rho = spearmanr(table["pwmcc"], table["mcc"]).statistic
    return {"spearman_pwmcc_mcc": None if not np.isfinite(rho) else float(rho), "n_cells": len(table)}


def extremes(table: pd.DataFrame) -> str:
    """The most stable cell beside the most accurate one (does the recipe-level PWMCC pick the right recipe?)."""
    stable, accurate = table.loc[table["pwmcc"].idxmax()], table.loc[table["mcc"].idxmax()]

    def name(row: pd.Series) -> str:
        return f"{row['architecture']} {row['l0_setting']} at {row['width']} latents (PWMCC {row['pwmcc']:.3f}, MCC {row['mcc']:.3f})"

    if stable["cell"] == accurate["cell"]:
        return f"The most stable cell is also the most accurate: {name(stable)}."
    return f"The most stable cell is {name(stable)}; the most accurate is {name(accurate)}."


def describe(settings_: dict[str, Any]) -> str:
    """The one-line statement of where the numbers come from."""
    return (f"{settings_['num_features']} true features in hidden size {settings_['hidden_dim']} (mean max |cos| between "
            f"true features {settings_['mean_max_abs_cosine']:.2f}), true L0 {settings_['true_l0']:.1f} active features "
            f"per sample, SAEs trained on {settings_['training_tokens']:,} tokens (a cache of {settings_['train_rows']:,} "
            f"rows, cycled)")  # fmt: skip


def headline(detail: dict[str, Any]) -> dict[str, Any]:
    """The ledger line: the mean within-cell Spearman(stability, recovery) with its 95 % CI; null 0, no claim."""
    analysis, s = detail["analysis"], detail["settings"]
    low, high = analysis["mean_spearman_ci95"]
    return {
        "metric": f"Spearman(cross-seed stability, recovery of a true feature), mean over {len(detail['cells'])} recipe "
                  f"cells ({s['num_features']} true features, d={s['hidden_dim']}, true L0 {s['true_l0']:.1f}); "
                  f"verdict: {detail['verdict']}",
        "value": analysis["mean_spearman"], "ci_low": low, "ci_high": high, "null": 0.0, "claim": "", "claim_sign": 0,
    }  # fmt: skip


def _fmt(value: Any, digits: int = 3) -> str:
    return "—" if value is None or (isinstance(value, float) and not np.isfinite(value)) else f"{value:.{digits}f}"


def _ci(value: float, low: float, high: float) -> str:
    return f"{_fmt(value)} [{_fmt(low)}, {_fmt(high)}]"


def display_table(table: pd.DataFrame) -> pd.DataFrame:
    """The report's table: one row per recipe cell, CIs in brackets."""
    return pd.DataFrame({
        "recipe": table["architecture"], "L0 setting": table["l0_setting"], "width": table["width"],
        "SAE L0": table["sae_l0"].map(lambda v: _fmt(v, 1)), "EV": table["explained_variance"].map(_fmt),
        "MCC to truth [95% CI]": [_ci(r.mcc, r.mcc_ci_low, r.mcc_ci_high) for r in table.itertuples()],
        "MCC random": table["mcc_random"].map(_fmt),
        "PWMCC across seeds [95% CI]": [_ci(r.pwmcc, r.pwmcc_ci_low, r.pwmcc_ci_high) for r in table.itertuples()],
        "PWMCC matched random": table["pwmcc_random_matched"].map(_fmt),
        "ρ(stability, recovery) [95% CI]": [_ci(r.spearman, r.spearman_ci_low, r.spearman_ci_high) for r in table.itertuples()],
        "true share of stable": table["precision"].map(_fmt), "true share of unstable": table["true_among_unstable"].map(_fmt),
        "stable share": table["stable_fraction"].map(_fmt), "dead": table["dead_fraction"].map(_fmt),
        "dense": table["dense_fraction"].map(_fmt), "verdict": table["verdict"],
    })  # fmt: skip


def markdown(detail: dict[str, Any], table: pd.DataFrame) -> str:
    """``ground_truth.md``: the question, the setting, the verdict and the table, then the figures."""
    s, analysis = detail["settings"], detail["analysis"]
    margin = detail["equivalence_margin"]
    lift_low, lift_high = analysis["mean_lift_ci95"]
    lines = [
        "# Ground truth: does stability across seeds predict recovery of the true features?", "",
        f"Setting: {describe(s)}; synthetic model preset `{s['preset']}` (sae-lens `SyntheticModel`: Zipfian firing, "
        "hierarchy, low-rank correlation).", "",
        f"**Verdict: {detail['verdict']}.** Mean over {len(table)} recipe cells of the within-cell Spearman correlation "
        f"between a feature's cross-seed stability (its mean best |cos| match in the other seeds) and its recovery (its "
        f"best |cos| to a true feature): {_ci(analysis['mean_spearman'], *analysis['mean_spearman_ci95'])} (95% CI, "
        "two-level bootstrap: seeds, then features within seeds). Rule (core/verdicts.py's, in this question's words): "
        f"stability predicts truth (95% CI above 0), stability misleads (below 0), equivalent within ±{margin:g} "
        "(90% CI inside ±m), otherwise inconclusive.", "",
        f"Precision of \"stable\" (best match ≥ {s['stable_threshold']:g} in every other seed) as a detector of \"true\" "
        f"(best |cos| to a true feature ≥ {s['true_threshold']:g}), minus the share of true features among the unstable "
        f"ones, mean over cells: {_ci(analysis['mean_lift'], lift_low, lift_high)}.", "",
        "Per recipe cell (alive features only for ρ and the detector; MCC = sae-lens `mean_correlation_coefficient`, the "
        "mean |cos| of the min(width, true features) Hungarian-matched pairs, so a narrower SAE is scored on the true "
        "features it matched best; "
        "PWMCC across seeds with a seed-bootstrap CI; matched random = rows drawn from the held-out activations' "
        "covariance):", "",
    ]  # fmt: skip
    lines += markdown_table_lines(display_table(table))
    rho = detail["across_cells"]["spearman_pwmcc_mcc"]
    lines += ["", f"Across the {len(table)} cells, Spearman(PWMCC, MCC) = {_fmt(rho)} (descriptive: do the more stable "
              f"recipes also recover more of the truth?). {extremes(table)}", "",
              f"![MCC vs L0]({FIGURES}/mcc_vs_l0.png)", "",
              f"![stability vs recovery]({FIGURES}/stability_vs_recovery.png)", ""]  # fmt: skip
    return "\n".join(lines)


def write_figures(table: pd.DataFrame, features: pd.DataFrame, folder: str | os.PathLike) -> list[Path]:
    """``mcc_vs_l0.png`` (MCC with its seed CI against the SAEs' L0, per recipe and width) and
    ``stability_vs_recovery.png`` (every alive feature: stability against recovery, per recipe)."""
    folder = Path(folder)
    figure = new_figure(6.4, 4.0)
    axis = figure.subplots()
    for (architecture, width), group in table.groupby(["architecture", "width"], sort=True):
        group = group.sort_values("sae_l0")
        errors = [np.clip(group["mcc"] - group["mcc_ci_low"], 0, None), np.clip(group["mcc_ci_high"] - group["mcc"], 0, None)]
        axis.errorbar(group["sae_l0"], group["mcc"], yerr=errors, marker="o", capsize=3, color=COLORS.get(architecture),
                      linestyle="-" if width == table["width"].max() else "--", label=f"{architecture} ({width} latents)")  # fmt: skip
    axis.axhline(float(table["mcc_random"].mean()), color="gray", linestyle=":", linewidth=1, label="random dictionaries")
    axis.set_xlabel("SAE L0 (mean active latents per sample)")
    axis.set_ylabel("MCC to the true dictionary")
    axis.legend(fontsize=7)
    figure.tight_layout()
    paths = [save_figure(figure, folder / "mcc_vs_l0.png")]
    figure = new_figure(6.4, 4.4)
    axis = figure.subplots()
    alive = features[features["alive"]]
    if len(alive) > MAX_SCATTER_POINTS:  # a fixed, seeded subsample keeps the PNG readable and deterministic
        alive = alive.sample(MAX_SCATTER_POINTS, random_state=0)
    for architecture, group in alive.groupby("architecture", sort=True):
        axis.scatter(group["stability"], group["recovery"], s=4, alpha=0.4, color=COLORS.get(architecture), label=architecture)
    axis.set_xlabel("cross-seed stability (mean best |cos| in the other seeds)")
    axis.set_ylabel("recovery (best |cos| to a true feature)")
    axis.set_xlim(0, 1.02)
    axis.set_ylim(0, 1.02)
    axis.legend(fontsize=8, markerscale=3)
    figure.tight_layout()
    paths.append(save_figure(figure, folder / "stability_vs_recovery.png"))
    return paths


def synthesis_rows(answer_dir: str | os.PathLike) -> pd.DataFrame:
    """The synthesis' ground-truth rows: one per recipe cell, for ``synthesis.frame_markdown``.

    Columns: ``sae`` (recipe, L0 setting, width), ``setting`` (true features, hidden size,
    true L0, tokens), ``seeds``, ``l0``, ``explained_variance``, ``mcc`` with its CI,
    ``pwmcc`` with its CI, ``pwmcc_random_matched``, ``spearman`` (stability vs recovery)
    with its CI, ``verdict``, and ``ground_truth_node`` (a ``ground_truth`` node id).
    """
    answer_dir = Path(answer_dir)
    detail = read_json(answer_dir / DETAIL)
    s = detail["settings"]
    setting = f"{s['num_features']} in d{s['hidden_dim']}, true L0 {s['true_l0']:.1f}, {s['training_tokens']:,} tokens"
    records = [{
        "sae": f"{row['architecture']} {row['l0_setting']} ({row['width']} latents)", "setting": setting,
        "seeds": row["seeds"], "l0": row["sae_l0"], "explained_variance": row["explained_variance"],
        "mcc": row["mcc"], "mcc_ci_low": row["mcc_ci_low"], "mcc_ci_high": row["mcc_ci_high"],
        "pwmcc": row["pwmcc"], "pwmcc_ci_low": row["pwmcc_ci_low"], "pwmcc_ci_high": row["pwmcc_ci_high"],
        "pwmcc_random_matched": row["pwmcc_random_matched"], "spearman": row["spearman"],
        "spearman_ci_low": row["spearman_ci_low"], "spearman_ci_high": row["spearman_ci_high"],
        "verdict": row["verdict"], "ground_truth_node": answer_dir.name,
    } for row in detail["cells"]]  # fmt: skip
    return pd.DataFrame.from_records(records)
