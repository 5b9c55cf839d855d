"""Figure of the meta-structure evaluation: explained variance of decoder vs random rows, and per row."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from sae_difficulty.evals.meta_structure.main import MetaStructureResult
from sae_difficulty.evals.meta_structure.output import ROW_SETS
from sae_difficulty.utils.plotting import new_figure, save_figure

COLORS = {"decoder": "tab:blue", "random": "tab:gray"}


def plot_meta_structure(result: MetaStructureResult, path: str | os.PathLike) -> Path:
    """Left: explained variance by each meta-SAE with its 95 % CI. Right: per-row share of the
    row's variance (around the set's mean) the meta-SAE reconstructs, decoder vs random rows."""
    figure = new_figure(9.0, 3.6)
    bars, rows = figure.subplots(1, 2)
    for position, name in enumerate(ROW_SETS):
        fit = result.fit(name)
        value = fit["explained_variance"]
        errors = [[max(value - fit["ci_low"], 0.0)], [max(fit["ci_high"] - value, 0.0)]]
        bars.bar(position, value, color=COLORS[name], yerr=errors, capsize=4)
        row_set = result.sets[name]
        shares = 1.0 - row_set.row_sse / np.maximum(row_set.row_sst, 1e-12)
        rows.hist(np.clip(shares, -1.0, 1.0), bins=np.linspace(-1.0, 1.0, 41), histtype="step", color=COLORS[name],
                  label=f"{name} ({len(shares)} rows)")  # fmt: skip
    bars.set_xticks(range(len(ROW_SETS)), [f"{name} rows" for name in ROW_SETS])
    bars.set_ylabel("explained variance by the meta-SAE")
    bars.set_title(f"{result.n_meta_latents} meta-latents, k={result.config.k}")
    rows.set_xlabel("per-row explained share (clipped to [-1, 1])")
    rows.set_ylabel("rows")
    rows.legend(fontsize=8)
    figure.tight_layout()
    return save_figure(figure, path)
