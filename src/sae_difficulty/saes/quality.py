"""SAE quality on held-out activations: explained variance, L0, dead fraction, feature frequencies, the quality report."""


from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from tqdm.auto import tqdm

from sae_difficulty.core import sae_metrics
from sae_difficulty.saes.cache import iter_row_blocks
from sae_difficulty.saes.checkpoint import SparseAutoencoder
from sae_difficulty.saes.encoding import (
    DEFAULT_BATCH_SIZE,
    check_width,
    sae_architecture,
)
from sae_difficulty.utils.errors import InputError
from sae_difficulty.utils.io import write_experiment, write_parquet

# --------------------------------------------------------------------------- quality


@dataclass(frozen=True)
class SAEQuality:
    """Quality of an SAE on held-out activations: JSON-ready scalars + per-feature frequencies."""

    metrics: dict[str, Any]
    feature_frequency: np.ndarray


@torch.no_grad()
def evaluate_quality(
    sae: SparseAutoencoder,
    heldout: Any,
    batch_size: int = DEFAULT_BATCH_SIZE,
    dense_threshold: float = sae_metrics.DENSE_THRESHOLD,
    progress: bool = False,
    max_rows: int | None = None,
) -> SAEQuality:
    """Explained variance, FVU, MSE, mean L0, dead and dense fractions on held-out activations.

    ``heldout``: numpy array, zarr array or tensor ``[H, d_in]``, streamed ``batch_size``
    rows at a time through ``reconstruct`` (the same path the causal patching uses).
    ``max_rows`` caps how many leading rows are used (None: all).
    Conventions are those of :mod:`sae_difficulty.core.sae_metrics`: a feature is dead if
    it fired on none of the ``n_tokens`` held-out tokens, dense if it fired on more than
    ``dense_threshold`` of them (SAEBench's feature density; 10 % by default).
    """
    if isinstance(heldout, torch.Tensor):
        heldout = heldout.detach().cpu().numpy()
    check_width(sae, heldout, "heldout")
    if max_rows is not None and max_rows < 1:
        raise InputError(f"max_rows: expected None or >= 1, got {max_rows}")
    n_rows = int(heldout.shape[0]) if max_rows is None else min(max_rows, int(heldout.shape[0]))
    reconstruction = sae_metrics.ReconstructionAccumulator()
    firing = sae_metrics.FiringAccumulator(sae.cfg.d_sae)
    blocks = iter_row_blocks(heldout, batch_size, stop=n_rows)
    for block in tqdm(blocks, total=-(-n_rows // batch_size), desc="evaluate SAE", disable=not progress):
        x = torch.from_numpy(block).to(sae.device)
        codes = sae.encode(x)
        x_hat = sae.decode(codes)
        reconstruction.update(block, x_hat.float().cpu().numpy())
        firing.update(codes.float().cpu().numpy())
    freqs = firing.frequencies()
    metrics = {
        "architecture": sae_architecture(sae),
        "d_in": int(sae.cfg.d_in),
        "d_sae": int(sae.cfg.d_sae),
        **reconstruction.result(),
        "mean_l0": firing.mean_l0(),
        "dead_fraction": sae_metrics.dead_fraction(freqs),
        "n_dead": int(np.sum(freqs == 0)),
        "dense_fraction": sae_metrics.dense_fraction(freqs, dense_threshold),
        "dense_threshold": dense_threshold,
    }
    return SAEQuality(metrics=metrics, feature_frequency=freqs)


def require_explained_variance(
    sae: SparseAutoencoder,
    path: str | os.PathLike,
    heldout: Any,
    floor: float,
    batch_size: int = DEFAULT_BATCH_SIZE,
    max_rows: int = 65_536,
) -> float:
    """The explained variance of ``sae`` on the first ``max_rows`` rows of ``heldout``; a one-line
    InputError below ``floor`` (an untrained or random-init SAE, or one fitted to other activations)."""
    if heldout is None:
        raise InputError(f"SAE {path}: an explained-variance floor needs held-out activations (heldout=None)")
    ev = evaluate_quality(sae, heldout, batch_size=batch_size, max_rows=max_rows).metrics["explained_variance"]
    if not ev >= floor:
        raise InputError(
            f"SAE {path}: explained variance {ev:.4f} on held-out activations is below the floor "
            f"{floor} (untrained or random-init SAE?)"
        )
    return ev


def plot_feature_frequency(
    freqs: np.ndarray, path: str | os.PathLike, title: str, dense_threshold: float = sae_metrics.DENSE_THRESHOLD
) -> Path:
    """Histogram of log10 feature firing frequency (dead features counted in the legend), PNG.

    Deterministic bytes: Agg rendering, fixed size and dpi, no software/date metadata.
    matplotlib is imported here, not with the module: stages that only evaluate (``codes``'
    explained-variance floor) do not pay for it.
    """
    from matplotlib.figure import Figure

    from sae_difficulty.utils.plotting import save_figure

    freqs = np.asarray(freqs, dtype=np.float64)
    if freqs.ndim != 1 or freqs.size == 0:
        raise InputError(f"freqs: expected a non-empty 1-D array, got shape {freqs.shape}")
    alive = freqs[freqs > 0]
    n_dead = int(freqs.size - alive.size)
    figure = Figure(figsize=(6, 4), dpi=100)  # no pyplot: no global backend or figure registry
    axis = figure.subplots()
    if alive.size:
        log_freq = np.log10(alive)
        low = min(np.floor(log_freq.min()), np.log10(dense_threshold) - 1)
        axis.hist(log_freq, bins=np.linspace(low, 0.0, 41), color="tab:blue", label=f"alive ({alive.size})")
    axis.axvline(np.log10(dense_threshold), color="tab:red", linestyle="--", label=f"dense > {dense_threshold:g}")
    axis.plot([], [], " ", label=f"dead (never fired): {n_dead} of {freqs.size}")
    axis.set_xlabel("log10 feature firing frequency (held-out tokens)")
    axis.set_ylabel("features")
    axis.set_title(title)
    axis.legend(loc="upper left", fontsize=8)
    figure.tight_layout()
    return save_figure(figure, path, dpi=100)


def write_quality_report(
    out_dir: str | os.PathLike,
    name: str,
    quality: SAEQuality,
    extra: Mapping[str, Any] | None = None,
    title: str | None = None,
) -> dict[str, Path]:
    """Write ``<name>.json`` (metrics + ``extra``, e.g. spliced loss and stability),
    ``<name>.parquet`` (one row: every scalar, nested keys joined by ``.``),
    ``<name>_feature_frequency.parquet`` and ``<name>_feature_frequency.png``."""
    out_dir = Path(out_dir)
    detail = {**quality.metrics, **dict(extra or {})}
    row = pd.json_normalize(_scalars_only(detail), sep=".")
    write_experiment(out_dir, name, detail, row)
    table = pd.DataFrame({"feature": np.arange(quality.feature_frequency.size), "frequency": quality.feature_frequency})
    parquet = write_parquet(out_dir / f"{name}_feature_frequency.parquet", table)
    png = plot_feature_frequency(
        quality.feature_frequency,
        out_dir / f"{name}_feature_frequency.png",
        title or name,
        dense_threshold=quality.metrics.get("dense_threshold", sae_metrics.DENSE_THRESHOLD),
    )
    return {
        "json": out_dir / f"{name}.json",
        "parquet": out_dir / f"{name}.parquet",
        "frequency_parquet": parquet,
        "png": png,
    }


def _scalars_only(values: Mapping[str, Any]) -> dict[str, Any]:
    """Nested mappings kept, lists dropped: the flat table holds one value per column."""
    kept: dict[str, Any] = {}
    for key, value in values.items():
        if isinstance(value, Mapping):
            kept[key] = _scalars_only(value)
        elif not isinstance(value, (list, tuple, np.ndarray)):
            kept[key] = value
    return kept
