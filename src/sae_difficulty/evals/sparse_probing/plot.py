"""Figure of sparse probing: accuracy vs k per task, SAE vs raw."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from sae_difficulty.evals.sparse_probing.main import SparseProbingResult
from sae_difficulty.evals.sparse_probing.output import FULL_K, REPRESENTATIONS
from sae_difficulty.utils.plotting import new_figure, save_figure


def plot_sparse_probing(result: SparseProbingResult, path: str | os.PathLike) -> Path:
    """Accuracy vs k per task (one panel each), SAE vs raw with 95% CI bars; the dense probe
    is the right-most point. Deterministic PNG bytes."""
    names = list(result.tasks)
    columns = min(3, len(names))
    n_rows = -(-len(names) // columns)
    figure = new_figure(4.2 * columns, 3.4 * n_rows, dpi=120)
    axes = np.atleast_1d(figure.subplots(n_rows, columns, squeeze=False)).ravel()
    labels = [str(k) for k in result.config.ks] + ["full"]
    positions = np.arange(len(labels))
    for axis, name in zip(axes, names):
        frame = result.tasks[name]
        for offset, (representation, color) in zip((-0.06, 0.06), zip(REPRESENTATIONS, ("tab:orange", "tab:blue"))):
            subset = frame[frame["representation"] == representation].set_index("k")
            subset = subset.loc[[*result.config.ks, FULL_K]]
            accuracy = subset["accuracy"].to_numpy(float)
            errors = np.vstack(
                [accuracy - subset["ci_low"].to_numpy(float), subset["ci_high"].to_numpy(float) - accuracy]
            )
            axis.errorbar(
                positions + offset,
                accuracy,
                yerr=np.maximum(errors, 0),
                marker="o",
                capsize=3,
                color=color,
                label=representation,
            )
        axis.axhline(0.5, color="grey", linestyle=":", linewidth=1)
        axis.set_xticks(positions, labels)
        axis.set_ylim(0.0, 1.05)
        axis.set_xlabel("k (columns selected on train)")
        axis.set_ylabel("test accuracy")
        axis.set_title(name)
        axis.legend(fontsize=8, loc="lower right")
    for axis in axes[len(names) :]:
        axis.set_visible(False)
    figure.tight_layout()
    return save_figure(figure, path)

