"""Control sets for the causal k/n: random SAE features matched to the top features on firing frequency.

With a few hundred examples, ablating almost any active feature moves the loss, so "k of
the top n probe features are significant" means little alone. The control runs the same
test on random sets of n features, each member drawn from the same firing-frequency
decile as one top feature (frequent features move the loss more often), and compares k
with the distribution of the random sets' k.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np
from scipy import stats as sps

from sae_difficulty.utils.errors import InputError

N_BINS = 10


def frequency_bins(frequencies: Any, n_bins: int = N_BINS) -> np.ndarray:
    """Quantile bin (0..n_bins-1) of each feature's firing frequency; ties share the bin of their mean rank."""
    freqs = np.asarray(frequencies, dtype=float)
    if freqs.ndim != 1 or freqs.size < 2 or not np.isfinite(freqs).all():
        raise InputError(f"frequencies: expected a 1-D array of finite firing frequencies, got shape {freqs.shape}")
    ranks = sps.rankdata(freqs, method="average") - 1
    return np.minimum((ranks * n_bins / freqs.size).astype(int), n_bins - 1)


def matched_random_sets(
    frequencies: Any, top_features: Sequence[int], n_sets: int, seed: int, n_bins: int = N_BINS
) -> list[list[int]]:
    """``n_sets`` random feature sets, member i drawn from top feature i's frequency bin.

    Members are distinct within a set and never one of the top features; when a bin has
    no feature left (e.g. all top features are in the top decile), the nearest bins are
    used.
    """
    bins = frequency_bins(frequencies, n_bins)
    top = [int(f) for f in top_features]
    if not top or any(not 0 <= f < bins.size for f in top):
        raise InputError(f"top_features {top}: expected feature indices in [0, {bins.size})")
    if int(n_sets) < 1:
        raise InputError(f"n_random_sets: expected an integer >= 1, got {n_sets!r}")
    excluded = np.zeros(bins.size, dtype=bool)
    excluded[top] = True
    rng = np.random.default_rng(seed)
    sets = []
    for _ in range(int(n_sets)):
        taken = excluded.copy()
        members = []
        for feature in top:
            pool = np.zeros(0, dtype=int)
            for radius in range(n_bins):  # the decile first; the nearest deciles when it is used up
                pool = np.flatnonzero((np.abs(bins - bins[feature]) <= radius) & ~taken)
                if pool.size:
                    break
            if pool.size == 0:
                raise InputError(f"feature {feature}: no feature left to draw a frequency-matched control from")
            pick = int(rng.choice(pool))
            taken[pick] = True
            members.append(pick)
        sets.append(members)
    return sets


def control_summary(k_top: int, k_random: Sequence[int]) -> dict[str, Any]:
    """Median and 95th percentile of the random sets' k, and the empirical p = (1 + #{k_r ≥ k}) / (1 + R)."""
    values = np.asarray(k_random, dtype=float)
    if values.ndim != 1 or values.size == 0:
        raise InputError("k_random: expected the k of at least one random set")
    return {
        "n_sets": int(values.size),
        "k_random": [int(v) for v in values],
        "median": float(np.median(values)),
        "p95": float(np.percentile(values, 95)),
        "p_empirical": float((1 + np.count_nonzero(values >= k_top)) / (1 + values.size)),
    }
