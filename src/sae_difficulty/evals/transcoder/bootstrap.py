"""Paired bootstraps of the SAE-vs-transcoder comparison, as resample counts (vectorized matrix products)."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from sae_difficulty.core.stats import bootstrap_indices, percentile_interval
from sae_difficulty.evals.transcoder.output import MODEL_NAMES

# Bootstrap replicates are computed in blocks of at most this many (replicate x row) weights.
_BOOT_ELEMENTS = 2_000_000


def _bootstrap_counts(rng: np.random.Generator, replicates: int, n: int) -> np.ndarray:
    """How often each of ``n`` items is drawn in each of ``replicates`` resamples [replicates, n]."""
    draws = bootstrap_indices(n, replicates, rng) + (np.arange(replicates) * n)[:, None]
    return np.bincount(draws.ravel(), minlength=replicates * n).reshape(replicates, n).astype(np.float64)


def percentile_or_none(values: np.ndarray) -> tuple[float | None, float | None]:
    """95 % percentile interval; None (JSON null) when no replicate is finite."""
    low, high = percentile_interval(values)
    return (None, None) if math.isnan(low) else (low, high)


def row_bootstrap(targets: np.ndarray, per_model: dict[str, dict[str, Any]], n_boot: int, seed: int) -> dict[str, np.ndarray]:
    """Paired bootstrap over held-out rows: replicates of each model's EV and L0 and of their differences.

    Both models see the same resampled rows; the total variance is recomputed per resample
    (resampled mean), on targets centred once so the float64 sums do not cancel.
    """
    centred = targets.astype(np.float64) - targets.astype(np.float64).mean(axis=0)
    sq_norms = np.einsum("ij,ij->i", centred, centred)
    n = len(centred)
    rng = np.random.default_rng([int(seed), 0])
    out: dict[str, list[np.ndarray]] = {key: [] for key in ("ev_sae", "ev_skip_transcoder", "l0_sae", "l0_skip_transcoder")}
    block = max(1, _BOOT_ELEMENTS // n)
    for start in range(0, n_boot, block):
        counts = _bootstrap_counts(rng, min(block, n_boot - start), n)
        resampled_sum = counts @ centred
        sst = counts @ sq_norms - np.einsum("ij,ij->i", resampled_sum, resampled_sum) / n
        for name in MODEL_NAMES:
            with np.errstate(divide="ignore", invalid="ignore"):
                out[f"ev_{name}"].append(1.0 - (counts @ per_model[name]["sse_rows"]) / sst)
            out[f"l0_{name}"].append(counts @ per_model[name]["l0_rows"] / n)
    return {key: np.concatenate(values) for key, values in out.items()}


def sequence_bootstrap(per_sequence: dict[str, np.ndarray], n_boot: int, seed: int) -> dict[str, np.ndarray]:
    """Paired bootstrap over spliced sequences: replicates of each model's mean Δloss (equal-length windows)."""
    n = len(per_sequence["clean"])
    rng = np.random.default_rng([int(seed), 1])
    replicates: dict[str, list[np.ndarray]] = {name: [] for name in MODEL_NAMES}
    block = max(1, _BOOT_ELEMENTS // n)
    for start in range(0, n_boot, block):
        counts = _bootstrap_counts(rng, min(block, n_boot - start), n)
        for name in MODEL_NAMES:
            replicates[name].append(counts @ (per_sequence[name] - per_sequence["clean"]) / n)
    return {name: np.concatenate(values) for name, values in replicates.items()}
