"""Figure of the SAE-vs-skip-transcoder comparison."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from sae_difficulty.evals.transcoder.main import TranscoderComparisonResult
from sae_difficulty.evals.transcoder.output import DIFFERENCE_METRICS, MODEL_NAMES
from sae_difficulty.utils.plotting import new_figure, save_figure


def _error_bars(value: float, low: float | None, high: float | None) -> list[float]:
    if low is None or high is None:
        return [0.0, 0.0]
    return [max(value - low, 0.0), max(high - value, 0.0)]


def plot_transcoder_comparison(result: TranscoderComparisonResult, path: str | Path) -> Path:
    """Bars per metric (EV, L0, Δloss) for SAE and skip-transcoder with 95 % CIs, plus the differences."""
    labels = {"sae": "SAE", "skip_transcoder": "skip-transcoder"}
    colors = {"sae": "tab:blue", "skip_transcoder": "tab:orange"}
    titles = {"explained_variance": "explained variance", "l0": "L0", "delta_loss": "Δloss (nats)"}
    figure = new_figure(14, 3.6)
    axes = figure.subplots(1, 4)
    for axis, metric in zip(axes[:3], DIFFERENCE_METRICS):
        for position, name in enumerate(MODEL_NAMES):
            stats = result.models[name]
            value = stats[metric]
            errors = _error_bars(value, stats[f"{metric}_ci_low"], stats[f"{metric}_ci_high"])
            axis.bar(position, value, color=colors[name], yerr=np.array(errors)[:, None], capsize=4)
        if metric == "delta_loss":
            axis.axhline(result.loss_zero_ablation - result.loss_clean, color="grey", linestyle="--", label="MLP zeroed")
            axis.legend(fontsize=8)
        axis.set_xticks(range(len(MODEL_NAMES)), [labels[name] for name in MODEL_NAMES])
        axis.set_title(titles[metric])
    diff_axis = axes[3]
    for position, metric in enumerate(DIFFERENCE_METRICS):
        diff = result.differences[metric]
        errors = _error_bars(diff["value"], diff["ci_low"], diff["ci_high"])
        diff_axis.errorbar(position, diff["value"], yerr=np.array(errors)[:, None], fmt="o", color="black", capsize=4)
    diff_axis.axhline(0.0, color="grey", linewidth=0.8)
    diff_axis.set_xticks(range(len(DIFFERENCE_METRICS)), ["ΔEV", "ΔL0", "ΔΔloss"])
    diff_axis.set_title("transcoder − SAE")
    figure.suptitle(f"layer {result.config['layer']} MLP, d_sae={result.d_sae}, {result.n_heldout_rows} held-out rows")
    figure.tight_layout()
    return save_figure(figure, path)
