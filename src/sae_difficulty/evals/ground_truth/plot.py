"""Figure of the ground-truth evaluation: each latent's best |cosine| to a true feature, and each true feature's."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from sae_difficulty.evals.ground_truth.main import GroundTruthResult
from sae_difficulty.utils.plotting import new_figure, save_figure


def plot_ground_truth(result: GroundTruthResult, path: str | os.PathLike) -> Path:
    """Histograms of best |cosine| (latents -> true features, true features -> latents), with the
    match threshold; the title gives MCC beside the random-dictionary MCC."""
    figure = new_figure(6.4, 3.6)
    axis = figure.subplots()
    bins = np.linspace(0.0, 1.0, 41)
    axis.hist(result.latents["best_cosine"], bins=bins, histtype="step", color="tab:blue",
              label=f"latents → nearest true feature ({len(result.latents)})")  # fmt: skip
    axis.hist(result.true_best, bins=bins, histtype="step", color="tab:orange",
              label=f"true features → nearest latent ({result.true_best.size})")  # fmt: skip
    axis.axvline(result.config.match_threshold, color="black", linestyle=":", linewidth=1)
    document = result.document()
    axis.set_title(f"MCC {document['mcc']:.3f} (random dictionaries {document['random_mcc']:.3f})", fontsize=10)
    axis.set_xlabel("best |cosine|")
    axis.set_ylabel("count")
    axis.legend(fontsize=8)
    figure.tight_layout()
    return save_figure(figure, path)
