"""Dependence-aware resampling of AUROC statistics for time-ordered examples.

Overlapping forecast windows share time steps, so neighbouring windows' errors, labels
and scores are dependent. Resampling them one at a time (the i.i.d. functions of
:mod:`sae_difficulty.core.stats`) then gives intervals that are too narrow and p-values
that are too small. Here the same statistics resample *blocks* of consecutive examples
(examples given in time order):

* :func:`block_bootstrap_weights` — moving-block bootstrap (Künsch 1989): ⌈n/L⌉ blocks of
  ``L`` consecutive examples with uniformly drawn starts, concatenated and cut to n;
* :func:`block_paired_permutation_test` — the paired swap test with one swap sign per
  block of ``L`` consecutive examples (Δ stays exactly linear in the signs);
* :func:`block_label_permutation_test` — labels permuted as whole blocks;
* :func:`block_delong_test` — DeLong's Δ with the variance of its influence terms
  summed within blocks (a batch-means variance), so positive correlation widens it.

With ``block_length=1`` every block is one example. :func:`compare_scores_dependent`
returns the keys of :func:`~sae_difficulty.core.stats.compare_scores` plus the 90 % CI
the equivalence verdict needs; with ``block_length=None`` its 95 % CI and p-values are
exactly those of the i.i.d. functions (same seeds, same draws).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from scipy import stats as sps

from sae_difficulty.core.stats import (
    _bootstrap_weights,
    _check_count,
    _check_pair,
    _chunks,
    _delong_components,
    _permutation_summary,
    _weighted_auroc,
    auroc,
    check_binary_labels,
    check_scores,
    compare_scores,
    comparison_record,
    normal_test_summary,
    paired_swap_weights,
)
from sae_difficulty.utils.errors import InputError

#: Share of the moving-block bootstrap's variance kept at block length 2m for an
#: m-dependent series with triangular autocovariance (the overlap of windows): about
#: 0.83, against 0.67 at block length m. Hence the default block length is twice the overlap.
BLOCK_LENGTH_PER_OVERLAP = 2


def overlap_windows(context_length: int, horizon: int, stride: int) -> int:
    """⌈(context + horizon) / stride⌉: how many window positions apart two windows stop sharing time steps."""
    for name, value in (("context_length", context_length), ("horizon", horizon), ("stride", stride)):
        if int(value) != value or value < 1:
            raise InputError(f"{name}: expected a positive integer, got {value!r}")
    return int(math.ceil((context_length + horizon) / stride))


def default_block_length(overlap: int) -> int:
    """Block length for the block bootstrap/permutations: twice the overlap in windows (see BLOCK_LENGTH_PER_OVERLAP)."""
    return max(1, BLOCK_LENGTH_PER_OVERLAP * int(overlap))


def _check_block_length(block_length: Any, n: int) -> int:
    if int(block_length) != block_length or block_length < 1:
        raise InputError(f"block_length: expected an integer >= 1, got {block_length!r}")
    return int(min(block_length, n))


def block_bootstrap_weights(rng: np.random.Generator, rows: int, n: int, block_length: int) -> np.ndarray:
    """Counts of each example in ``rows`` moving-block bootstrap resamples [rows, n].

    Each resample concatenates ⌈n/L⌉ blocks ``[s, s+L)`` with starts uniform on
    ``0..n-L`` and keeps the first n indices.
    """
    length = _check_block_length(block_length, n)
    n_blocks = -(-n // length)
    starts = rng.integers(0, n - length + 1, size=(rows, n_blocks))
    indices = (starts[:, :, None] + np.arange(length)).reshape(rows, -1)[:, :n]
    flat = indices + (np.arange(rows) * n)[:, None]
    return np.bincount(flat.ravel(), minlength=rows * n).reshape(rows, n).astype(float)


def _weights(rng: np.random.Generator, rows: int, n: int, block_length: int | None) -> np.ndarray:
    if block_length is None:
        return _bootstrap_weights(rng, rows, n)
    return block_bootstrap_weights(rng, rows, n, block_length)


# Percentiles of the two-sided percentile intervals (literal, so the 95 % one matches core.stats exactly).
_PERCENTILES = {0.95: (2.5, 97.5), 0.90: (5.0, 95.0)}


def _interval(values: np.ndarray, level: float) -> tuple[float, float]:
    finite = values[np.isfinite(values)]
    if finite.size == 0:
        return float("nan"), float("nan")
    low, high = np.percentile(finite, list(_PERCENTILES[level]))
    return float(low), float(high)


def bootstrap_auroc_replicates(
    y: Any, score: Any, n_boot: int = 2000, seed: int = 0, block_length: int | None = None
) -> np.ndarray:
    """Bootstrap AUROCs of ``score`` (NaN where a resample misses a class); ``block_length=None`` is i.i.d.

    With ``block_length=None`` the draws are those of :func:`~sae_difficulty.core.stats.bootstrap_auroc`.
    """
    labels = check_binary_labels(y)
    values = check_scores(score, labels.size)
    n_boot = _check_count(n_boot, "n_boot")
    rng = np.random.default_rng(seed)
    return np.concatenate(
        [_weighted_auroc(labels, values, _weights(rng, rows, labels.size, block_length)) for rows in _chunks(n_boot, labels.size)]
    )


def paired_bootstrap_replicates(
    y: Any, score_a: Any, score_b: Any, n_boot: int = 2000, seed: int = 0, block_length: int | None = None
) -> np.ndarray:
    """Bootstrap Δ = AUROC(a) − AUROC(b), both scores resampled with the same (blocks of) examples.

    With ``block_length=None`` the draws are those of
    :func:`~sae_difficulty.core.stats.paired_bootstrap_delta_auroc`, so its 95 % CI is the
    2.5/97.5 percentiles of these replicates.
    """
    labels, a, b = _check_pair(y, score_a, score_b)
    n_boot = _check_count(n_boot, "n_boot")
    rng = np.random.default_rng(seed)
    deltas = []
    for rows in _chunks(n_boot, labels.size):
        weights = _weights(rng, rows, labels.size, block_length)
        deltas.append(_weighted_auroc(labels, a, weights) - _weighted_auroc(labels, b, weights))
    return np.concatenate(deltas)


def paired_bootstrap_ci(
    y: Any, score_a: Any, score_b: Any, n_boot: int = 2000, seed: int = 0, block_length: int | None = None,
    level: float = 0.95,
) -> tuple[float, float]:  # fmt: skip
    """Percentile CI (``level`` 0.95 or 0.90) of Δ = AUROC(a) − AUROC(b): i.i.d. or moving-block bootstrap."""
    if level not in _PERCENTILES:
        raise InputError(f"level: expected one of {sorted(_PERCENTILES)}, got {level!r}")
    return _interval(paired_bootstrap_replicates(y, score_a, score_b, n_boot, seed, block_length), level)


def _block_ids(n: int, block_length: int) -> np.ndarray:
    return np.arange(n) // _check_block_length(block_length, n)


def block_paired_permutation_test(
    y: Any, score_a: Any, score_b: Any, n_perm: int, seed: int, block_length: int
) -> dict[str, float]:
    """Paired swap test with one sign per block of ``block_length`` consecutive examples.

    Δ(swap) = Σ_i t_i w_i (see :func:`~sae_difficulty.core.stats.paired_swap_weights`), so
    with a sign per block the null is the ±1 matrix of blocks times the block sums of w.
    """
    weights = paired_swap_weights(y, score_a, score_b)
    n_perm = _check_count(n_perm, "n_perm")
    block_weights = np.bincount(_block_ids(weights.size, block_length), weights=weights)
    observed = float(weights.sum())
    rng = np.random.default_rng(seed)
    null = []
    for rows in _chunks(n_perm, block_weights.size):
        signs = 1.0 - 2.0 * rng.integers(0, 2, size=(rows, block_weights.size), dtype=np.int8)
        null.append(signs @ block_weights)
    return {**_permutation_summary(observed, np.concatenate(null)), "block_length": int(block_length)}


def block_label_permutation_test(
    y: Any, score_a: Any, score_b: Any, n_perm: int, seed: int, block_length: int
) -> dict[str, float]:
    """The label-permutation test with labels permuted as whole blocks of consecutive examples.

    The block order is shuffled and the blocks' labels concatenated in that order, so
    the labels keep their within-block dependence. Δ = Σ_pos (r_a − r_b)/(n₁n₀) as in
    :func:`~sae_difficulty.core.stats.label_permutation_test`.
    """
    labels, a, b = _check_pair(y, score_a, score_b)
    n_perm = _check_count(n_perm, "n_perm")
    n = labels.size
    n_pos = int(labels.sum())
    rank_difference = (sps.rankdata(a) - sps.rankdata(b)) / (n_pos * (n - n_pos))
    observed = float(rank_difference[labels].sum())
    blocks = np.split(np.arange(n), np.arange(_check_block_length(block_length, n), n, _check_block_length(block_length, n)))
    rng = np.random.default_rng(seed)
    null = np.empty(n_perm)
    for row in range(n_perm):
        order = np.concatenate([blocks[k] for k in rng.permutation(len(blocks))])
        null[row] = labels[order] @ rank_difference
    return {**_permutation_summary(observed, null), "block_length": int(block_length)}


def block_delong_test(y: Any, score_a: Any, score_b: Any, block_length: int) -> dict[str, float]:
    """DeLong's Δ with a block (batch-means) variance of its influence terms; normal approximation.

    Δ − E Δ ≈ Σ_pos ψ_i/n₁ − Σ_neg φ_j/n₀ with ψ = V10_a − V10_b and φ = V01_a − V01_b
    (centred). DeLong's variance sums their squares, assuming independent examples; here
    the centred terms are summed within blocks of consecutive examples first, so
    dependence inside a block counts. ``block_length=1`` is DeLong's variance up to the
    n/(n−1) factor.
    """
    labels, a, b = _check_pair(y, score_a, score_b)
    auc_a, v10_a, v01_a = _delong_components(labels, a)
    auc_b, v10_b, v01_b = _delong_components(labels, b)
    n_pos, n_neg = v10_a.size, v01_a.size
    influence = np.empty(labels.size)
    psi = v10_a - v10_b
    phi = v01_a - v01_b
    influence[labels] = (psi - psi.mean()) / n_pos
    influence[~labels] = -(phi - phi.mean()) / n_neg
    block_sums = np.bincount(_block_ids(labels.size, block_length), weights=influence)
    variance = float(np.sum(block_sums**2))
    return {**normal_test_summary(auc_a - auc_b, math.sqrt(max(variance, 0.0))), "block_length": int(block_length)}


def compare_scores_dependent(
    y: Any, score_a: Any, score_b: Any, n_boot: int = 2000, n_perm: int = 10000, seed: int = 0,
    block_length: int | None = None,
) -> dict[str, Any]:  # fmt: skip
    """:func:`~sae_difficulty.core.stats.compare_scores` plus the 90 % CI, for i.i.d. or time-ordered examples.

    ``block_length=None``: exactly ``compare_scores`` (i.i.d. bootstrap and tests), with
    ``ci90_low, ci90_high`` from the same bootstrap draws. An integer: moving-block
    bootstrap CIs, block paired-swap and block label permutations, block DeLong, all in
    blocks of ``block_length`` consecutive examples (the examples must be in time order).
    Adds ``resampling`` ("iid"/"block") and ``block_length``.
    """
    labels, a, b = _check_pair(y, score_a, score_b)
    replicates = paired_bootstrap_replicates(labels, a, b, n_boot, seed, block_length)
    ci90 = _interval(replicates, 0.90)
    if block_length is None:
        result = compare_scores(labels, a, b, n_boot=n_boot, n_perm=n_perm, seed=seed)
        return {**result, "ci90_low": ci90[0], "ci90_high": ci90[1], "resampling": "iid", "block_length": 1}
    length = _check_block_length(block_length, labels.size)
    low, high = _interval(replicates, 0.95)
    label_perm = block_label_permutation_test(labels, a, b, n_perm, seed, length)
    paired_perm = block_paired_permutation_test(labels, a, b, n_perm, seed, length)
    delong = block_delong_test(labels, a, b, length)
    delta = float(auroc(labels, a) - auroc(labels, b))
    record = comparison_record(labels, a, b, (delta, low, high), label_perm, paired_perm, delong, n_boot, n_perm, seed)
    return {**record, "ci90_low": ci90[0], "ci90_high": ci90[1], "resampling": "block", "block_length": length}


def auroc_with_ci(y: Any, score: Any, n_boot: int, seed: int, block_length: int | None = None) -> tuple[float, float, float]:
    """AUROC with a 95 % percentile bootstrap CI, i.i.d. (``block_length=None``, as
    :func:`~sae_difficulty.core.stats.bootstrap_auroc`) or moving-block."""
    replicates = bootstrap_auroc_replicates(y, score, n_boot, seed, block_length)
    return (auroc(y, score), *_interval(replicates, 0.95))
