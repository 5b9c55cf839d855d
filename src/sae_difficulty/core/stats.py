"""AUROC and the statistics of a difference of two AUROCs on the same examples.

Three tests of Δ = AUROC(a) − AUROC(b) are reported side by side:

* :func:`label_permutation_test` — labels shuffled, both scores kept. This is the
  original study's p-value, kept for comparability; its null is "neither score is
  related to the label", which is not the question asked when both scores are
  informative.
* :func:`paired_permutation_test` — each example's two scores are swapped at random
  (the Venkatraman–Begg exchangeability null "a and b are interchangeable"), the
  question actually asked.
* :func:`delong_test` — DeLong's analytic test (fast midrank algorithm of Sun & Xu).

Why hand-written: scikit-learn's ``roc_auc_score`` scores one vector at a time, and
no library offers vectorized permutation/bootstrap nulls of a paired ΔAUROC nor a
DeLong test. Here every resampled AUROC comes from midranks and matrix products, so
10,000 permutations of 2,000 examples take well under a second:

* label permutation: Δ is linear in the label indicator once both scores are ranked;
* paired swap: Δ is exactly linear in the per-example swap signs (derivation in
  :func:`paired_swap_weights`);
* bootstrap: AUROC with integer resampling weights from one sort per score.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from scipy import stats as sps

from sae_difficulty.utils.errors import InputError

# Rows of resampled AUROCs computed at once; bounds memory to a few tens of MB.
_CHUNK_ELEMENTS = 2_000_000
# Resampled statistics within this distance of the observed one count as "as extreme"
# (guards against float round-off making the identity permutation look less extreme).
_TIE_TOL = 1e-12


# --------------------------------------------------------------------------- checks
def check_binary_labels(y: Any, name: str = "y", require_both: bool = True) -> np.ndarray:
    """Return ``y`` as a bool array; one-line InputError if it is not 0/1 or single-class."""
    arr = np.asarray(y)
    if arr.ndim != 1 or arr.size == 0:
        raise InputError(f"{name}: expected a non-empty 1-D array of 0/1 labels, got shape {arr.shape}")
    if arr.dtype != bool:
        if not np.issubdtype(arr.dtype, np.number):
            raise InputError(f"{name}: expected 0/1 labels, got dtype {arr.dtype}")
        if not np.all(np.isin(arr, (0, 1))):
            bad = arr[~np.isin(arr, (0, 1))][0]
            raise InputError(f"{name}: expected 0/1 labels, found the value {bad!r}")
        arr = arr.astype(bool)
    if require_both and (arr.all() or not arr.any()):
        raise InputError(f"{name}: all {arr.size} labels are {int(arr[0])}; AUROC needs both classes")
    return arr


def check_scores(score: Any, n: int, name: str = "score") -> np.ndarray:
    """Return ``score`` as a finite float64 1-D array of length ``n``; InputError otherwise."""
    arr = np.asarray(score, dtype=float)
    if arr.ndim != 1:
        raise InputError(f"{name}: expected a 1-D array, got shape {arr.shape}")
    if arr.size != n:
        raise InputError(f"{name}: length {arr.size} does not match the {n} labels")
    finite = np.isfinite(arr)
    if not finite.all():
        first = int(np.flatnonzero(~finite)[0])
        raise InputError(f"{name}: non-finite value {arr[first]} at index {first}")
    return arr


def _check_pair(y: Any, score_a: Any, score_b: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    labels = check_binary_labels(y)
    return labels, check_scores(score_a, labels.size, "score_a"), check_scores(score_b, labels.size, "score_b")


def _check_count(value: int, name: str, minimum: int = 1) -> int:
    if int(value) != value or value < minimum:
        raise InputError(f"{name}: expected an integer >= {minimum}, got {value!r}")
    return int(value)


# --------------------------------------------------------------------------- AUROC
def _weighted_auroc(labels: np.ndarray, score: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """AUROC for each row of integer example ``weights`` [B, n] (ties count one half).

    AUROC = Σ_pos w_i (Σ_neg-below w_j + ½ Σ_neg-tied w_j) / (W_pos W_neg). One sort
    of ``score`` serves every row; with integer weights every sum is exact in float64.
    Rows without both classes give NaN.
    """
    order = np.argsort(score, kind="stable")
    sorted_score = score[order]
    group_starts = np.flatnonzero(np.r_[True, sorted_score[1:] != sorted_score[:-1]])
    w = weights[:, order]
    is_pos = labels[order]
    w_pos = np.add.reduceat(w * is_pos, group_starts, axis=1)
    w_neg = np.add.reduceat(w * ~is_pos, group_starts, axis=1)
    neg_below = np.cumsum(w_neg, axis=1) - w_neg
    numerator = (w_pos * (neg_below + 0.5 * w_neg)).sum(axis=1)
    denominator = w_pos.sum(axis=1) * w_neg.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(denominator > 0, numerator / np.where(denominator > 0, denominator, 1.0), np.nan)


def auroc(y: Any, score: Any) -> float:
    """Area under the ROC curve of ``score`` for binary labels ``y`` (ties count one half)."""
    labels = check_binary_labels(y)
    values = check_scores(score, labels.size)
    return float(_weighted_auroc(labels, values, np.ones((1, labels.size)))[0])


def _bootstrap_weights(rng: np.random.Generator, rows: int, n: int) -> np.ndarray:
    """Counts of each example in ``rows`` bootstrap resamples (n draws with replacement)."""
    draws = rng.integers(0, n, size=(rows, n)) + (np.arange(rows) * n)[:, None]
    return np.bincount(draws.ravel(), minlength=rows * n).reshape(rows, n).astype(float)


def _chunks(total: int, n: int) -> list[int]:
    rows = max(1, _CHUNK_ELEMENTS // max(n, 1))
    return [min(rows, total - start) for start in range(0, total, rows)]


def _percentile_ci(values: np.ndarray) -> tuple[float, float]:
    finite = values[np.isfinite(values)]
    if finite.size == 0:
        return float("nan"), float("nan")
    low, high = np.percentile(finite, [2.5, 97.5])
    return float(low), float(high)


def bootstrap_auroc(y: Any, score: Any, n_boot: int = 2000, seed: int = 0) -> tuple[float, float, float]:
    """AUROC with a 95% percentile bootstrap CI (examples resampled): ``(auroc, lo, hi)``."""
    labels = check_binary_labels(y)
    values = check_scores(score, labels.size)
    n_boot = _check_count(n_boot, "n_boot")
    rng = np.random.default_rng(seed)
    replicates = np.concatenate(
        [
            _weighted_auroc(labels, values, _bootstrap_weights(rng, rows, labels.size))
            for rows in _chunks(n_boot, labels.size)
        ]
    )
    return (auroc(labels, values), *_percentile_ci(replicates))


def paired_bootstrap_delta_auroc(
    y: Any, score_a: Any, score_b: Any, n_boot: int = 2000, seed: int = 0
) -> tuple[float, float, float]:
    """ΔAUROC = AUROC(a) − AUROC(b) with a 95% percentile CI from resampling examples.

    Both scores are resampled with the same example indices (paired). Resamples that
    miss a class (possible only for tiny samples) are dropped from the percentiles.
    """
    labels, a, b = _check_pair(y, score_a, score_b)
    n_boot = _check_count(n_boot, "n_boot")
    rng = np.random.default_rng(seed)
    deltas = []
    for rows in _chunks(n_boot, labels.size):
        weights = _bootstrap_weights(rng, rows, labels.size)
        deltas.append(_weighted_auroc(labels, a, weights) - _weighted_auroc(labels, b, weights))
    delta = auroc(labels, a) - auroc(labels, b)
    return (float(delta), *_percentile_ci(np.concatenate(deltas)))


# --------------------------------------------------------------------------- tests
def _permutation_summary(observed: float, null: np.ndarray) -> dict[str, float]:
    """p-values with the +1 correction (the observed arrangement is one of the permutations)."""
    count = null.size
    extreme_two = np.count_nonzero(np.abs(null) >= abs(observed) - _TIE_TOL)
    extreme_one = np.count_nonzero(null >= observed - _TIE_TOL)
    return {
        "observed_delta": float(observed),
        "p_two_sided": float((1 + extreme_two) / (1 + count)),
        "p_one_sided": float((1 + extreme_one) / (1 + count)),
        "null_mean": float(null.mean()),
        "null_std": float(null.std(ddof=1)) if count > 1 else float("nan"),
        "n_perm": int(count),
    }


def label_permutation_test(y: Any, score_a: Any, score_b: Any, n_perm: int = 10000, seed: int = 0) -> dict[str, float]:
    """The original study's test: shuffle the labels, keep both scores, recompute Δ.

    Null: neither score is related to the label. Kept for comparability; use
    :func:`paired_permutation_test` for "is a better than b". One-sided = a > b.
    With midranks r, AUROC = (Σ_pos r − n₁(n₁+1)/2)/(n₁n₀), so Δ = Σ_pos (r_a − r_b)/(n₁n₀)
    and every permuted Δ is one row of a 0/1 matrix times that vector.
    """
    labels, a, b = _check_pair(y, score_a, score_b)
    n_perm = _check_count(n_perm, "n_perm")
    n_pos = int(labels.sum())
    n_neg = labels.size - n_pos
    rank_difference = (sps.rankdata(a) - sps.rankdata(b)) / (n_pos * n_neg)
    observed = float(rank_difference[labels].sum())
    rng = np.random.default_rng(seed)
    null = []
    for rows in _chunks(n_perm, labels.size):
        shuffled = rng.permuted(np.tile(labels, (rows, 1)), axis=1)
        null.append(shuffled.astype(float) @ rank_difference)
    return _permutation_summary(observed, np.concatenate(null))


def _count_below(sorted_values: np.ndarray, x: np.ndarray) -> np.ndarray:
    """Σ_j H(x − v_j) over ``sorted_values``: strictly below counts 1, ties count ½."""
    left = np.searchsorted(sorted_values, x, side="left")
    right = np.searchsorted(sorted_values, x, side="right")
    return left + 0.5 * (right - left)


def paired_swap_weights(y: Any, score_a: Any, score_b: Any) -> np.ndarray:
    """Per-example weights w with Δ(swap) = Σ_i t_i w_i, t_i = −1 where example i's scores are swapped.

    Scores are first mapped to normalized midranks (AUROC-invariant) so that swapping
    compares like with like. Writing the Mann–Whitney sums over (positive i, negative j)
    pairs, a pair contributes ±D00_ij = H(a_i−a_j) − H(b_i−b_j) when both or neither are
    swapped and ±D10_ij = H(b_i−a_j) − H(a_i−b_j) otherwise, which sums to
    Δ = ½ Σ_i t_i Σ_j (D00−D10)_ij + ½ Σ_j t_j Σ_i (D00+D10)_ij: exactly linear in t.
    """
    labels, a, b = _check_pair(y, score_a, score_b)
    n = labels.size
    ranked_a = sps.rankdata(a) / n
    ranked_b = sps.rankdata(b) / n
    pos_a, pos_b = ranked_a[labels], ranked_b[labels]
    neg_a, neg_b = ranked_a[~labels], ranked_b[~labels]
    n_pos, n_neg = pos_a.size, neg_a.size
    sorted_neg_a, sorted_neg_b = np.sort(neg_a), np.sort(neg_b)
    sorted_pos_a, sorted_pos_b = np.sort(pos_a), np.sort(pos_b)

    def negatives_below_a(x: np.ndarray) -> np.ndarray:
        return _count_below(sorted_neg_a, x)

    def negatives_below_b(x: np.ndarray) -> np.ndarray:
        return _count_below(sorted_neg_b, x)

    def positives_above_a(x: np.ndarray) -> np.ndarray:
        return n_pos - _count_below(sorted_pos_a, x)

    def positives_above_b(x: np.ndarray) -> np.ndarray:
        return n_pos - _count_below(sorted_pos_b, x)

    weights = np.empty(n)
    weights[labels] = 0.5 * (
        negatives_below_a(pos_a) - negatives_below_b(pos_b) - negatives_below_a(pos_b) + negatives_below_b(pos_a)
    )
    weights[~labels] = 0.5 * (
        positives_above_a(neg_a) - positives_above_b(neg_b) + positives_above_b(neg_a) - positives_above_a(neg_b)
    )
    return weights / (n_pos * n_neg)


def paired_permutation_test(y: Any, score_a: Any, score_b: Any, n_perm: int = 10000, seed: int = 0) -> dict[str, float]:
    """Per-example swap test of Δ: null "a and b are exchangeable" (one-sided = a > b).

    Each permutation swaps the two (midrank-normalized) scores of a random half of the
    examples; Δ of every permutation is a ±1 matrix times :func:`paired_swap_weights`.
    """
    weights = paired_swap_weights(y, score_a, score_b)
    n_perm = _check_count(n_perm, "n_perm")
    observed = float(weights.sum())
    rng = np.random.default_rng(seed)
    null = []
    for rows in _chunks(n_perm, weights.size):
        signs = 1.0 - 2.0 * rng.integers(0, 2, size=(rows, weights.size), dtype=np.int8)
        null.append(signs @ weights)
    return _permutation_summary(observed, np.concatenate(null))


def _delong_components(labels: np.ndarray, score: np.ndarray) -> tuple[float, np.ndarray, np.ndarray]:
    """AUROC and DeLong's structural components V10 (per positive) and V01 (per negative)."""
    pos, neg = score[labels], score[~labels]
    n_pos, n_neg = pos.size, neg.size
    rank_all = sps.rankdata(np.concatenate([pos, neg]))
    rank_pos, rank_neg = sps.rankdata(pos), sps.rankdata(neg)
    v10 = (rank_all[:n_pos] - rank_pos) / n_neg
    v01 = 1.0 - (rank_all[n_pos:] - rank_neg) / n_pos
    area = (rank_all[:n_pos].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg)
    return float(area), v10, v01


def delong_test(y: Any, score_a: Any, score_b: Any) -> dict[str, float]:
    """DeLong's test of Δ = AUROC(a) − AUROC(b) for paired scores (normal approximation).

    ``null_mean`` is 0 and ``null_std`` the standard error of Δ; identical scores give
    p = 1. One-sided = a > b.
    """
    labels, a, b = _check_pair(y, score_a, score_b)
    auc_a, v10_a, v01_a = _delong_components(labels, a)
    auc_b, v10_b, v01_b = _delong_components(labels, b)
    cov10 = np.cov(np.vstack([v10_a, v10_b])) if v10_a.size > 1 else np.zeros((2, 2))
    cov01 = np.cov(np.vstack([v01_a, v01_b])) if v01_a.size > 1 else np.zeros((2, 2))
    covariance = cov10 / v10_a.size + cov01 / v01_a.size
    variance = float(covariance[0, 0] + covariance[1, 1] - 2 * covariance[0, 1])
    return normal_test_summary(auc_a - auc_b, float(np.sqrt(max(variance, 0.0))))


def normal_test_summary(delta: float, std: float) -> dict[str, Any]:
    """The z test of Δ against N(0, std²) (DeLong's and its block version): p values two- and one-sided (a > b)."""
    if std <= 1e-15:
        z = 0.0 if abs(delta) <= _TIE_TOL else float(np.sign(delta) * np.inf)
    else:
        z = delta / std
    return {
        "observed_delta": float(delta),
        "p_two_sided": float(min(1.0, 2 * sps.norm.sf(abs(z)))),
        "p_one_sided": float(sps.norm.sf(z)),
        "null_mean": 0.0,
        "null_std": std,
        "z": float(z),
    }


def compare_scores(
    y: Any, score_a: Any, score_b: Any, n_boot: int = 2000, n_perm: int = 10000, seed: int = 0
) -> dict[str, Any]:
    """Δ = AUROC(a) − AUROC(b) with its bootstrap CI and the three tests side by side.

    Keys: ``auroc_a, auroc_b, delta, ci_low, ci_high``, ``p_label_permutation``,
    ``p_paired_permutation``, ``p_delong`` (two-sided) and their ``*_one_sided``
    (a > b) versions, the full sub-dicts ``label_permutation``,
    ``paired_permutation``, ``delong``, and ``n, n_pos, n_boot, n_perm, seed``.
    """
    labels, a, b = _check_pair(y, score_a, score_b)
    delta, low, high = paired_bootstrap_delta_auroc(labels, a, b, n_boot=n_boot, seed=seed)
    label_perm = label_permutation_test(labels, a, b, n_perm=n_perm, seed=seed)
    paired_perm = paired_permutation_test(labels, a, b, n_perm=n_perm, seed=seed)
    delong = delong_test(labels, a, b)
    return comparison_record(labels, a, b, (delta, low, high), label_perm, paired_perm, delong, n_boot, n_perm, seed)


def comparison_record(
    labels: np.ndarray, a: np.ndarray, b: np.ndarray, delta_ci: tuple[float, float, float], label_perm: dict[str, Any],
    paired_perm: dict[str, Any], delong: dict[str, Any], n_boot: int, n_perm: int, seed: int,
) -> dict[str, Any]:  # fmt: skip
    """The dict :func:`compare_scores` returns, from its parts (shared with the block-resampled comparison)."""
    delta, low, high = delta_ci
    return {
        "auroc_a": auroc(labels, a),
        "auroc_b": auroc(labels, b),
        "delta": delta,
        "ci_low": low,
        "ci_high": high,
        "p_label_permutation": label_perm["p_two_sided"],
        "p_paired_permutation": paired_perm["p_two_sided"],
        "p_delong": delong["p_two_sided"],
        "p_label_permutation_one_sided": label_perm["p_one_sided"],
        "p_paired_permutation_one_sided": paired_perm["p_one_sided"],
        "p_delong_one_sided": delong["p_one_sided"],
        "label_permutation": label_perm,
        "paired_permutation": paired_perm,
        "delong": delong,
        "n": int(labels.size),
        "n_pos": int(labels.sum()),
        "n_boot": int(n_boot),
        "n_perm": int(n_perm),
        "seed": int(seed),
    }


# --------------------------------------------------------------------------- per-feature effects
def holm_adjust(p_values: Any) -> np.ndarray:
    """Holm–Bonferroni step-down adjusted p-values (same order as the input).

    Hand-written because statsmodels is outside the core's dependency set; it is four
    lines: sort, multiply the k-th smallest by (m − k + 1), running max, cap at 1.
    """
    p = np.asarray(p_values, dtype=float)
    order = np.argsort(p, kind="stable")
    m = p.size
    stepped = np.maximum.accumulate((m - np.arange(m)) * p[order])
    adjusted = np.empty(m)
    adjusted[order] = np.minimum(stepped, 1.0)
    return adjusted


def _wilcoxon_p(values: np.ndarray) -> float:
    if not np.any(values != 0):
        return 1.0
    return float(sps.wilcoxon(values, zero_method="wilcox", alternative="two-sided").pvalue)


CORRECTIONS = ("holm", "bonferroni", "bh", "none")


def adjust_p_values(p_values: Any, correction: str) -> np.ndarray:
    """Multiple-comparison adjustment: Holm, Bonferroni, Benjamini–Hochberg (``"bh"``) or ``"none"``."""
    p = np.asarray(p_values, dtype=float)
    if correction == "holm":
        return holm_adjust(p)
    if correction == "bonferroni":
        return np.minimum(p * p.size, 1.0)
    if correction == "bh":
        return sps.false_discovery_control(p, method="bh")
    if correction == "none":
        return p.copy()
    raise InputError(f"correction: expected one of {CORRECTIONS}, got {correction!r}")


def feature_effect_tests(
    deltas: Any,
    alpha: float = 0.05,
    correction: str = "holm",
    feature_names: list[Any] | None = None,
) -> pd.DataFrame:
    """Per-feature test that the mean paired effect (e.g. Δloss of ablating it) differs from 0.

    ``deltas`` is [n_examples, n_features]. Returns one row per feature column, in
    column order, with ``n, mean, std, ci_low, ci_high`` (95% t-interval),
    ``p_wilcoxon`` (signed-rank, two-sided; the test used for significance),
    ``p_ttest``, ``p_adjusted`` (``correction`` in ``CORRECTIONS``, Holm by default),
    ``significant`` (``p_adjusted < alpha``) and ``correction``; a leading ``feature``
    column only when ``feature_names`` is given (callers may insert their own ids).
    An all-zero column gets p = 1 and is not significant.
    """
    values = np.asarray(deltas, dtype=float)
    if values.ndim != 2 or values.shape[0] < 2 or values.shape[1] < 1:
        raise InputError(f"deltas: expected a 2-D array [n_examples >= 2, n_features >= 1], got shape {values.shape}")
    if not np.isfinite(values).all():
        row, col = map(int, np.argwhere(~np.isfinite(values))[0])
        raise InputError(f"deltas: non-finite value at example {row}, feature column {col}")
    if correction not in CORRECTIONS:
        raise InputError(f"correction: expected one of {CORRECTIONS}, got {correction!r}")
    if not 0 < alpha < 1:
        raise InputError(f"alpha: expected a number in (0, 1), got {alpha!r}")
    n, n_features = values.shape
    if feature_names is not None and len(feature_names) != n_features:
        raise InputError(f"feature_names: {len(feature_names)} names for {n_features} feature columns")

    means = values.mean(axis=0)
    stds = values.std(axis=0, ddof=1)
    half_width = sps.t.ppf(0.975, n - 1) * stds / np.sqrt(n)
    p_wilcoxon = np.array([_wilcoxon_p(values[:, j]) for j in range(n_features)])
    p_ttest = np.full(n_features, np.nan)  # undefined for a constant non-zero column
    for j in range(n_features):
        if stds[j] > 0:
            p_ttest[j] = sps.ttest_1samp(values[:, j], 0.0).pvalue
        elif means[j] == 0:
            p_ttest[j] = 1.0
    p_adjusted = adjust_p_values(p_wilcoxon, correction)
    frame = pd.DataFrame(
        {
            "n": n,
            "mean": means,
            "std": stds,
            "ci_low": means - half_width,
            "ci_high": means + half_width,
            "p_wilcoxon": p_wilcoxon,
            "p_ttest": p_ttest,
            "p_adjusted": p_adjusted,
            "significant": p_adjusted < alpha,
            "correction": correction,
        }
    )
    if feature_names is not None:
        frame.insert(0, "feature", list(feature_names))
    return frame


# --------------------------------------------------------------------------- bootstrap helpers (SAE evaluations)


def bootstrap_indices(n: int, n_boot: int, rng: np.random.Generator) -> np.ndarray:
    """Seeded resamples with replacement of ``n`` items, as an index array [n_boot, n].

    Drawn in one call, ``rng.integers(0, n, (n_boot, n))``: the draw order of
    ``scipy.stats.bootstrap`` (unbatched), so a statistic indexed with these rows sees the
    same resamples scipy's percentile bootstrap would.
    """
    return rng.integers(0, n, size=(n_boot, n))


def percentile_interval(replicates: Any, level: float = 0.95) -> tuple[float, float]:
    """Percentile interval of bootstrap ``replicates`` at ``level`` (two-sided), over the finite ones.

    (nan, nan) when no replicate is finite. The percentiles are ``50 ∓ 50 * level``
    (2.5 and 97.5 exactly at the default), numpy's linear interpolation.
    """
    if not 0 < level < 1:
        raise InputError(f"level: expected a number in (0, 1), got {level!r}")
    values = np.asarray(replicates, dtype=np.float64).ravel()
    finite = values[np.isfinite(values)]
    if finite.size == 0:
        return float("nan"), float("nan")
    low, high = np.percentile(finite, [50 - 50 * level, 50 + 50 * level])
    return float(low), float(high)
