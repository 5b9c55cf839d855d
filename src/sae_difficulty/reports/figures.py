"""PNG figures of the shared analyses (matplotlib, Agg, deterministic bytes).

Figures are built on ``matplotlib.figure.Figure`` and written by
:func:`sae_difficulty.utils.plotting.save_figure` (Agg canvas, fixed dpi, no "Software"
metadata: the same inputs give identical bytes).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from sae_difficulty.utils.errors import InputError
from sae_difficulty.utils.plotting import save_figure


def _frame(table: Any, required: set[str], name: str) -> pd.DataFrame:
    frame = table if isinstance(table, pd.DataFrame) else pd.DataFrame(list(table))
    missing = required - set(frame.columns)
    if missing:
        raise InputError(f"{name}: missing column(s) {sorted(missing)}")
    if frame.empty:
        raise InputError(f"{name}: no rows to plot")
    return frame


def _error_bars(frame: pd.DataFrame, value: str, low: str, high: str) -> np.ndarray:
    """Asymmetric error bar lengths; NaN CIs (not computed) draw no bar."""
    values = frame[value].to_numpy(float)
    lower = np.nan_to_num(values - frame[low].to_numpy(float), nan=0.0)
    upper = np.nan_to_num(frame[high].to_numpy(float) - values, nan=0.0)
    return np.vstack([np.maximum(lower, 0), np.maximum(upper, 0)])


def plot_ladder(table: Any, path: str | os.PathLike, title: str, deltas: Mapping[str, Any] | None = None) -> Path:
    """Bar chart of each rung's AUROC with its 95% CI; chance at 0.5.

    ``table`` is ``LadderResult.table`` (or its records); ``deltas`` (optional,
    ``LadderResult.deltas``) adds the comparisons with CI and paired-permutation p below.
    """
    frame = _frame(table, {"rung", "blocks", "auroc", "auroc_ci_low", "auroc_ci_high"}, "table")
    fig = Figure(figsize=(6.4, 4.2))
    ax = fig.add_subplot()
    positions = np.arange(len(frame))
    ax.bar(
        positions,
        frame["auroc"],
        yerr=_error_bars(frame, "auroc", "auroc_ci_low", "auroc_ci_high"),
        capsize=4,
        color="#4C72B0",
    )
    ax.axhline(0.5, color="grey", linestyle="--", linewidth=1, label="chance")
    ax.set_xticks(positions, [f"{r}\n{b}" for r, b in zip(frame["rung"], frame["blocks"])])
    ax.set_ylabel("AUROC (95% bootstrap CI)")
    low = float(np.nanmin(frame["auroc_ci_low"].to_numpy(float), initial=0.5))
    ax.set_ylim(min(0.45, low - 0.02), 1.0)
    ax.set_title(title)
    ax.legend(loc="upper left")
    if deltas:
        lines = [
            f"Δ{name} = {d['delta']:+.3f} [{d['ci_low']:+.3f}, {d['ci_high']:+.3f}], "
            f"p(paired) = {d['p_paired_permutation']:.3g}"
            for name, d in deltas.items()
        ]
        fig.text(0.01, 0.01, "\n".join(lines), fontsize=7, va="bottom")
        fig.subplots_adjust(bottom=0.14 + 0.035 * len(lines))
    return save_figure(fig, path)


def plot_risk_coverage(results: Mapping[str, Mapping[str, Any]], path: str | os.PathLike, title: str) -> Path:
    """Risk–coverage curves (label → ``risk_coverage`` result) with oracle and random references."""
    if not results:
        raise InputError("results: expected at least one risk_coverage result")
    fig = Figure(figsize=(6.0, 4.2))
    ax = fig.add_subplot()
    drawn_references: list[float] = []
    for label, result in results.items():
        curve = _frame(result["curve"], {"coverage", "risk"}, f"results[{label!r}]['curve']")
        ax.plot(
            curve["coverage"],
            curve["risk"],
            marker="o",
            markersize=3,
            label=f"{label} (AURC {result['aurc']:.4f}, {result['pct_oracle_captured']:.0f}% of oracle)",
        )
        if not any(np.isclose(result["oracle_aurc"], seen) for seen in drawn_references):
            oracle = pd.DataFrame(result["oracle_curve"])
            suffix = "" if not drawn_references else f" ({label})"
            ax.plot(oracle["coverage"], oracle["risk"], color="black", linestyle=":", label=f"oracle{suffix}")
            random = pd.DataFrame(result["random_curve"])
            ax.plot(random["coverage"], random["risk"], color="grey", linestyle="--", label=f"random{suffix}")
            drawn_references.append(result["oracle_aurc"])
    ax.set_xlabel("coverage (fraction kept, lowest risk first)")
    ax.set_ylabel("risk (mean error of kept)")
    ax.set_title(title)
    ax.legend(fontsize=7)
    return save_figure(fig, path)


def plot_reliability(report: Mapping[str, Any], path: str | os.PathLike, title: str) -> Path:
    """Reliability diagram before and after out-of-fold recalibration (a ``calibration_report``)."""
    if "reliability" not in report or "metrics" not in report:
        raise InputError("report: expected a calibration_report with 'reliability' and 'metrics'")
    fig = Figure(figsize=(5.2, 5.6))
    ax, ax_counts = fig.subplots(2, 1, sharex=True, gridspec_kw={"height_ratios": [3, 1]})
    ax.plot([0, 1], [0, 1], color="grey", linestyle="--", linewidth=1, label="perfect")
    for version, records in report["reliability"].items():
        table = _frame(records, {"mean_pred", "frac_pos", "count"}, f"report['reliability'][{version!r}]")
        filled = table[table["count"] > 0]
        metric = report["metrics"][version]
        ax.plot(
            filled["mean_pred"],
            filled["frac_pos"],
            marker="o",
            markersize=3,
            label=f"{version} (ECE {metric['ece']:.3f}, Brier {metric['brier']:.3f})",
        )
    before = pd.DataFrame(report["reliability"]["before"])
    ax_counts.bar(
        (before["lower"] + before["upper"]) / 2,
        before["count"],
        width=before["upper"] - before["lower"],
        color="#999999",
    )
    ax.set_ylabel("fraction positive")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.set_title(title)
    ax.legend(fontsize=7, loc="upper left")
    ax_counts.set_xlabel("predicted probability")
    ax_counts.set_ylabel("count (before)")
    return save_figure(fig, path)


def plot_cascade(report: Mapping[str, Any], path: str | os.PathLike, title: str) -> Path:
    """Cost/error of the score-routed cascade, its Pareto frontier, oracle routing and references."""
    curve = _frame(report["curve"], {"cost", "error"}, "report['curve']")
    frontier = pd.DataFrame(report["frontier"])
    oracle_curve = pd.DataFrame(report["oracle_curve"])
    fig = Figure(figsize=(6.0, 4.2))
    ax = fig.add_subplot()
    ax.plot(curve["cost"], curve["error"], color="#4C72B0", alpha=0.35, linewidth=1, label="routed by score")
    ax.plot(
        frontier["cost"],
        frontier["error"],
        color="#4C72B0",
        drawstyle="steps-post",
        marker=".",
        label="Pareto frontier",
    )
    ax.plot(oracle_curve["cost"], oracle_curve["error"], color="black", linestyle=":", label="oracle routing")
    cheap, expensive = report["always_cheap"], report["always_expensive"]
    ax.plot(
        [cheap["cost"], expensive["cost"]],
        [cheap["error"], expensive["error"]],
        color="grey",
        linestyle="--",
        label="random routing",
    )
    for key, marker in (("always_cheap", "s"), ("always_expensive", "D"), ("oracle", "*")):
        ax.scatter(
            [report[key]["cost"]], [report[key]["error"]], marker=marker, s=60, zorder=3, label=key.replace("_", " ")
        )
    ax.set_xlabel("mean cost per example")
    ax.set_ylabel("mean error")
    ax.set_title(title)
    ax.legend(fontsize=7)
    return save_figure(fig, path)


def plot_feature_effects(frame: Any, path: str | os.PathLike, title: str) -> Path:
    """Per-feature mean effect with 95% CI (``feature_effect_tests`` output), grouped by ``positions`` if present.

    Significant features (column ``significant``) are marked with an asterisk.
    """
    table = _frame(frame, {"feature", "mean", "ci_low", "ci_high"}, "frame")
    groups = list(dict.fromkeys(table["positions"])) if "positions" in table.columns else [None]
    features = list(dict.fromkeys(table["feature"]))
    width = 0.8 / len(groups)
    fig = Figure(figsize=(max(5.0, 0.5 * len(features) * len(groups) + 2), 4.2))
    ax = fig.add_subplot()
    for g, group in enumerate(groups):
        part = table if group is None else table[table["positions"] == group]
        x = np.array([features.index(f) for f in part["feature"]]) + (g - (len(groups) - 1) / 2) * width
        ax.bar(
            x,
            part["mean"],
            width=width,
            yerr=_error_bars(part, "mean", "ci_low", "ci_high"),
            capsize=3,
            label=None if group is None else str(group),
        )
        if "significant" in part.columns:
            for xi, high, significant in zip(x, part["ci_high"], part["significant"]):
                if bool(significant):
                    ax.text(xi, high, "*", ha="center", va="bottom")
    ax.axhline(0.0, color="grey", linewidth=1)
    ax.set_xticks(np.arange(len(features)), [str(f) for f in features], rotation=45 if len(features) > 8 else 0)
    ax.set_xlabel("feature")
    ax.set_ylabel("mean effect (95% CI)")
    ax.set_title(title)
    if groups != [None]:
        ax.legend(title="positions", fontsize=7)
    return save_figure(fig, path)
