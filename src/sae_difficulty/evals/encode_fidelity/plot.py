"""Figure of the encode-fidelity check."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from sae_difficulty.evals.encode_fidelity.main import EncodeFidelityResult
from sae_difficulty.utils.plotting import new_figure, save_figure


def plot_encode_fidelity(result: EncodeFidelityResult, path: str | os.PathLike) -> Path:
    """Histogram of per-row max |code difference| (log scale) with the tolerance marked."""
    figure = new_figure(5, 3.2)
    axis = figure.subplots()
    values = np.maximum(result.row_max_abs_diff, 1e-12)
    bins = np.logspace(-12, max(0.0, float(np.log10(values.max())) + 0.5), 40)
    axis.hist(values, bins=bins, color="tab:blue")
    axis.set_xscale("log")
    axis.axvline(result.config.atol, color="tab:red", linestyle="--", label=f"atol {result.config.atol:g}")
    axis.set_xlabel("per-row max |loaded code − source code|")
    axis.set_ylabel("rows")
    axis.set_title(f"encode fidelity ({result.format}): {'passed' if result.passed else 'FAILED'}")
    axis.legend()
    figure.tight_layout()
    return save_figure(figure, path)
