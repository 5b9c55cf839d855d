"""Figure of circuit faithfulness: top-K circuit vs random K-sets."""

from __future__ import annotations

import os
from pathlib import Path

from sae_difficulty.evals.circuit.main import CircuitResult
from sae_difficulty.utils.plotting import new_figure, save_figure


def plot_faithfulness(result: CircuitResult, path: str | os.PathLike) -> Path:
    """Faithfulness vs K: attribution-ranked circuit (line) vs random K-sets (mean ± SD band)."""
    curve = result.curve
    figure = new_figure(5, 3.5)
    axis = figure.subplots()
    low = curve["faithfulness_random_mean"] - curve["faithfulness_random_sd"]
    high = curve["faithfulness_random_mean"] + curve["faithfulness_random_sd"]
    axis.fill_between(curve["k"], low, high, color="tab:gray", alpha=0.3, label="random K features (mean ± SD)")
    axis.plot(curve["k"], curve["faithfulness_random_mean"], color="tab:gray", marker="o")
    axis.plot(curve["k"], curve["faithfulness_top"], color="tab:blue", marker="o", label="top-K by |attribution|")
    axis.axhline(1.0, color="black", linestyle=":", linewidth=1)
    axis.axhline(0.0, color="black", linewidth=0.5)
    axis.set_xscale("log")
    axis.set_xlabel("features kept (K)")
    axis.set_ylabel("faithfulness")
    axis.set_title(f"feature circuit, layers {list(result.config.layers)}, {result.n_examples} examples")
    axis.legend(fontsize=8)
    figure.tight_layout()
    return save_figure(figure, path)

