"""Seed stability of SAE dictionaries against random controls, with a CI on the gap.

Extends :mod:`sae_difficulty.core.sae_metrics` (PWMCC, Gaussian random dictionaries)
with what a seed study needs:

* two random controls of the same shape as each trained dictionary: ``gaussian``
  (rows uniform on the sphere: no structure at all) and ``shuffled`` (each decoder
  row's coordinates permuted independently: the row keeps its norm and its
  distribution of entries, e.g. heavy tails, but loses its direction); given the
  activations, a third, ``covariance`` (rows drawn from the activations' own
  covariance: :mod:`sae_difficulty.core.stability_baselines`), the baseline matched to
  anisotropic data that the stability verdict uses;
* the PWMCC matrix across seeds, the same matrix for the controls, and the gap
  (trained minus control) with a 95% bootstrap CI that resamples *seeds*, not pairs:
  pairs sharing a seed are dependent, so the seed is the independent unit;
* the same for any per-dictionary score (e.g. Fourier overlap), resampling dictionaries.

Numpy only; hand-written because no library offers seed-level PWMCC baselines.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from itertools import combinations
from typing import Any

import numpy as np

from sae_difficulty.core.sae_metrics import (
    expected_random_max_cosine,
    pwmcc,
    random_dictionary,
)
from sae_difficulty.core.stability_baselines import (
    covariance_factor,
    covariance_random_dictionary,
)
from sae_difficulty.utils.errors import InputError

CONTROLS = ("gaussian", "shuffled")
#: The control matched to the data, added when the activations are given.
MATCHED = "covariance"
CI_LEVEL = 0.95


def shuffled_decoder(dictionary: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Each row's coordinates permuted independently (same norms and entry distributions, random directions)."""
    rows = np.asarray(dictionary, dtype=np.float64)
    if rows.ndim != 2 or rows.shape[0] == 0:
        raise InputError(f"dictionary: expected a non-empty 2-D array [n_features, d], got shape {rows.shape}")
    return rng.permuted(rows, axis=1)


def control_dictionary(
    dictionary: np.ndarray, kind: str, rng: np.random.Generator, factor: np.ndarray | None = None
) -> np.ndarray:
    """A random control with the shape of ``dictionary``: ``gaussian``, ``shuffled`` or ``covariance``
    (rows from N(0, F Fᵀ); ``factor`` F from :func:`~sae_difficulty.core.stability_baselines.covariance_factor`)."""
    rows = np.asarray(dictionary)
    if kind == MATCHED:
        if factor is None:
            raise InputError("control 'covariance': needs the activations' covariance factor")
        return covariance_random_dictionary(rows.shape[0], factor, rng)
    if kind == "gaussian":
        return random_dictionary(rows.shape[0], rows.shape[1], rng)
    if kind == "shuffled":
        return shuffled_decoder(rows, rng)
    raise InputError(f"control: unknown kind {kind!r}; expected one of {list(CONTROLS)}")


def _check_dictionaries(dictionaries: Sequence[np.ndarray]) -> list[np.ndarray]:
    arrays = [np.asarray(d, dtype=np.float64) for d in dictionaries]
    if len(arrays) < 2:
        raise InputError(f"dictionaries: need at least two (one per seed) to compare, got {len(arrays)}")
    if any(a.ndim != 2 for a in arrays) or len({a.shape[1] for a in arrays}) > 1:
        raise InputError(f"dictionaries: expected 2-D arrays sharing the model dimension, got {[a.shape for a in arrays]}")
    return arrays


def pairwise_matrix(dictionaries: Sequence[np.ndarray], fill_diagonal: float = 1.0) -> np.ndarray:
    """PWMCC between every two dictionaries (symmetric); the diagonal is ``fill_diagonal`` (self = 1)."""
    count = len(dictionaries)
    matrix = np.full((count, count), fill_diagonal, dtype=np.float64)
    for i, j in combinations(range(count), 2):
        matrix[i, j] = matrix[j, i] = pwmcc(dictionaries[i], dictionaries[j])
    return matrix


def control_matrix(
    dictionaries: Sequence[np.ndarray], kind: str, n_draws: int, seed: int, factor: np.ndarray | None = None
) -> np.ndarray:
    """Mean over ``n_draws`` of the PWMCC matrix between controls of each dictionary.

    In each draw every dictionary gets its own control (``kind``), so the control pair
    (i, j) has the shapes (and, for ``shuffled``, the row statistics) of the trained pair.
    The diagonal is NaN (a control is not compared with itself).
    """
    if n_draws < 1:
        raise InputError(f"n_random: expected >= 1, got {n_draws}")
    arrays = _check_dictionaries(dictionaries)
    rng = np.random.default_rng(seed)
    total = np.zeros((len(arrays), len(arrays)))
    for _ in range(n_draws):
        controls = [control_dictionary(a, kind, rng, factor) for a in arrays]
        total += pairwise_matrix(controls, fill_diagonal=0.0)
    mean = total / n_draws
    np.fill_diagonal(mean, np.nan)
    return mean


def upper_pairs(matrix: np.ndarray) -> np.ndarray:
    """The values above the diagonal, pairs ``(i, j)``, ``i < j``, in row order."""
    rows, cols = np.triu_indices(matrix.shape[0], k=1)
    return matrix[rows, cols]


def _mean_sd(values: np.ndarray) -> tuple[float, float]:
    values = np.asarray(values, dtype=np.float64)
    return float(values.mean()), float(values.std(ddof=1)) if values.size > 1 else 0.0


def seed_bootstrap_pair_mean(pair_values: np.ndarray, n_boot: int, seed: int) -> tuple[float, float, float]:
    """Mean over seed pairs of a pairwise statistic ``[S, S]`` with a 95% CI resampling seeds.

    Each resample draws ``S`` seeds with replacement and averages the statistic over
    the pairs of draws that are different seeds (a seed is never paired with itself);
    a resample with a single distinct seed has no pair and is skipped. With two seeds
    every usable resample is the one pair, so the CI collapses to the point.
    """
    values = np.asarray(pair_values, dtype=np.float64)
    if values.ndim != 2 or values.shape[0] != values.shape[1] or values.shape[0] < 2:
        raise InputError(f"pair_values: expected a square [S, S] matrix with S >= 2, got shape {values.shape}")
    if n_boot < 1:
        raise InputError(f"n_boot: expected >= 1, got {n_boot}")
    count = values.shape[0]
    point = float(upper_pairs(values).mean())
    rng = np.random.default_rng(seed)
    means = []
    for _ in range(n_boot):
        draw = rng.integers(0, count, size=count)
        first, second = np.triu_indices(count, k=1)
        keep = draw[first] != draw[second]
        if keep.any():
            means.append(values[draw[first][keep], draw[second][keep]].mean())
    if not means:
        return point, point, point
    alpha = (1.0 - CI_LEVEL) / 2.0
    low, high = np.quantile(means, [alpha, 1.0 - alpha])
    return point, float(low), float(high)


def bootstrap_mean(values: np.ndarray, n_boot: int, seed: int) -> tuple[float, float, float]:
    """Mean of per-dictionary values with a 95% percentile CI resampling the dictionaries."""
    values = np.asarray(values, dtype=np.float64)
    if values.ndim != 1 or values.size == 0:
        raise InputError(f"values: expected a non-empty 1-D array, got shape {values.shape}")
    rng = np.random.default_rng(seed)
    draws = values[rng.integers(0, values.size, size=(n_boot, values.size))].mean(axis=1)
    alpha = (1.0 - CI_LEVEL) / 2.0
    low, high = np.quantile(draws, [alpha, 1.0 - alpha])
    return float(values.mean()), float(low), float(high)


def _kinds_and_factor(activations: Any) -> tuple[tuple[str, ...], np.ndarray | None]:
    if activations is None:
        return CONTROLS, None
    return (*CONTROLS, MATCHED), covariance_factor(activations)


def stability_with_controls(
    dictionaries: Mapping[str, np.ndarray], n_random: int, n_boot: int, seed: int, activations: Any = None
) -> dict[str, Any]:
    """PWMCC across seeds, the Gaussian and shuffled-decoder controls, and the gap with a seed-bootstrap CI.

    Returns ``names`` (sorted), ``pwmcc_matrix`` (diagonal 1), ``pwmcc_mean``/``pwmcc_sd``
    over pairs, per control ``controls[kind]`` with its ``matrix``, ``mean``/``sd`` over
    pairs and ``gap``/``gap_ci_low``/``gap_ci_high`` (trained minus control, mean over
    pairs), the closed-form Gaussian expectation ``gaussian_expected`` (equal widths),
    and ``pairs`` (one record per pair). With ``activations`` ([rows, d]) the
    ``covariance`` control is added (its own random stream, so the others are unchanged).
    """
    kinds, factor = _kinds_and_factor(activations)
    names = sorted(dictionaries)
    arrays = _check_dictionaries([dictionaries[name] for name in names])
    observed = pairwise_matrix(arrays)
    result: dict[str, Any] = {"names": names, "n_random": n_random, "n_boot": n_boot, "seed": seed,
                              "pwmcc_matrix": observed}  # fmt: skip
    result["pwmcc_mean"], result["pwmcc_sd"] = _mean_sd(upper_pairs(observed))
    widths = {a.shape[0] for a in arrays}
    result["gaussian_expected"] = (
        expected_random_max_cosine(arrays[0].shape[0], arrays[0].shape[1]) if len(widths) == 1 else None
    )
    rows, cols = np.triu_indices(len(names), k=1)
    pairs = [{"a": names[i], "b": names[j], "pwmcc": observed[i, j]} for i, j in zip(rows, cols)]
    controls = {}
    for index, kind in enumerate(kinds):
        matrix = control_matrix(arrays, kind, n_random, seed + 1000 * (index + 1), factor)
        mean, sd = _mean_sd(upper_pairs(matrix))
        gap = observed - matrix
        np.fill_diagonal(gap, 0.0)
        point, low, high = seed_bootstrap_pair_mean(gap, n_boot, seed + index)
        controls[kind] = {"matrix": matrix, "mean": mean, "sd": sd, "gap": point, "gap_ci_low": low, "gap_ci_high": high}
        for record, i, j in zip(pairs, rows, cols):
            record[f"{kind}_pwmcc"] = matrix[i, j]
    result["controls"] = controls
    result["pairs"] = pairs
    return result


def score_with_controls(
    dictionaries: Mapping[str, np.ndarray],
    score: Callable[[np.ndarray], float],
    n_random: int,
    n_boot: int,
    seed: int,
    activations: Any = None,
) -> dict[str, Any]:
    """A per-dictionary score (e.g. Fourier overlap), the same score of each control, and the gap.

    ``per_dictionary[name]`` holds the score and each control's mean over ``n_random``
    draws; ``mean``/``sd`` are over dictionaries; ``controls[kind]`` has the control's
    mean/sd and the gap (score minus control, mean over dictionaries) with a 95% CI
    resampling dictionaries. With ``activations`` the ``covariance`` control is added,
    drawn from its own random stream (the other controls' values are unchanged).
    """
    if n_random < 1:
        raise InputError(f"n_random: expected >= 1, got {n_random}")
    kinds, factor = _kinds_and_factor(activations)
    names = sorted(dictionaries)
    rng = np.random.default_rng(seed)
    matched_rng = np.random.default_rng([seed, 1])
    per_dictionary = {}
    for name in names:
        dictionary = np.asarray(dictionaries[name], dtype=np.float64)
        entry = {"score": float(score(dictionary))}
        for kind in CONTROLS:
            entry[kind] = float(np.mean([score(control_dictionary(dictionary, kind, rng)) for _ in range(n_random)]))
        if factor is not None:
            entry[MATCHED] = float(np.mean([score(control_dictionary(dictionary, MATCHED, matched_rng, factor))
                                            for _ in range(n_random)]))  # fmt: skip
        per_dictionary[name] = entry
    scores = np.array([per_dictionary[n]["score"] for n in names])
    result: dict[str, Any] = {"names": names, "per_dictionary": per_dictionary}
    result["mean"], result["sd"] = _mean_sd(scores)
    controls = {}
    for index, kind in enumerate(kinds):
        control = np.array([per_dictionary[n][kind] for n in names])
        mean, sd = _mean_sd(control)
        point, low, high = bootstrap_mean(scores - control, n_boot, seed + index)
        controls[kind] = {"mean": mean, "sd": sd, "gap": point, "gap_ci_low": low, "gap_ci_high": high}
    result["controls"] = controls
    return result
