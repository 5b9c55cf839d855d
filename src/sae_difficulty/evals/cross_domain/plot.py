"""Figure of the cross-domain evaluation: EV heatmaps and the selectivity histogram."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from sae_difficulty.evals.cross_domain.main import (
    SELECTIVE_THRESHOLD,
    CrossDomainResult,
)
from sae_difficulty.utils.plotting import new_figure, save_figure


def plot_cross_domain(result: CrossDomainResult, path: str | os.PathLike) -> Path:
    """EV heatmaps (train domain × eval domain, one per architecture; SAEs sharing a cell are
    averaged) and a histogram of live-feature selectivity per SAE. Deterministic PNG bytes."""
    rows = result.rows
    architectures = sorted(rows["architecture"].unique())
    domains = result.domains
    figure = new_figure(4.2 * (len(architectures) + 1), 3.8, dpi=120)
    axes = figure.subplots(1, len(architectures) + 1, squeeze=False)[0]
    for axis, architecture in zip(axes, architectures):
        subset = rows[rows["architecture"] == architecture]
        grid = (
            subset.groupby(["train_domain", "eval_domain"])["explained_variance"]
            .mean()
            .unstack()
            .reindex(index=domains, columns=domains)
        )
        values = grid.to_numpy(float)
        image = axis.imshow(values, vmin=min(0.0, np.nanmin(values)), vmax=1.0, cmap="viridis")
        for (i, j), value in np.ndenumerate(values):
            if np.isfinite(value):
                axis.text(j, i, f"{value:.2f}", ha="center", va="center", color="white" if value < 0.6 else "black")
        axis.set_xticks(range(len(domains)), domains)
        axis.set_yticks(range(len(domains)), domains)
        axis.set_xlabel("eval domain")
        axis.set_ylabel("train domain")
        axis.set_title(f"explained variance: {architecture}")
        figure.colorbar(image, ax=axis, fraction=0.046)
    histogram = axes[-1]
    low = 1.0 / max(len(domains), 1)
    bins = np.linspace(low, 1.0, 21)
    for name, frame in result.selectivity.items():
        values = frame["selectivity"].dropna().to_numpy(float)
        if values.size:
            histogram.hist(values, bins=bins, histtype="step", label=f"{name} ({values.size} live)")
    histogram.axvline(SELECTIVE_THRESHOLD, color="tab:red", linestyle="--", linewidth=1)
    histogram.set_xlabel("selectivity (share of mass on preferred domain)")
    histogram.set_ylabel("live features")
    histogram.set_title("feature domain selectivity")
    histogram.legend(fontsize=7)
    figure.tight_layout()
    return save_figure(figure, path)
