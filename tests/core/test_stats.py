"""AUROC, paired ΔAUROC bootstrap and the three tests, on binormal data with planted AUROCs."""

from __future__ import annotations

import time

import numpy as np
import pytest
from scipy import stats as sps
from sklearn.metrics import roc_auc_score

from sae_difficulty.core import stats
from sae_difficulty.utils.errors import InputError
from sae_difficulty.utils.io import dumps


def binormal_pair(rng: np.random.Generator, n: int, auc_a: float, auc_b: float, rho: float = 0.3):
    """Balanced labels and two correlated scores whose true AUROCs are exactly ``auc_a``/``auc_b``.

    Positives are shifted by μ = √2 Φ⁻¹(AUC) with unit-variance noise, so
    P(score_pos > score_neg) = Φ(μ/√2) = AUC; a shared component correlates a and b.
    """
    y = np.zeros(n, dtype=int)
    y[: n // 2] = 1
    rng.shuffle(y)
    shared = rng.normal(size=n)
    scores = []
    for auc in (auc_a, auc_b):
        mu = np.sqrt(2) * sps.norm.ppf(auc)
        scores.append(mu * y + np.sqrt(rho) * shared + np.sqrt(1 - rho) * rng.normal(size=n))
    return y, scores[0], scores[1]


def test_auroc_matches_sklearn_with_ties():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 300)
    score = np.round(rng.normal(size=300) + y, 1)  # many ties
    assert stats.auroc(y, score) == pytest.approx(roc_auc_score(y, score), abs=1e-12)


def test_weighted_auroc_equals_auroc_of_repeated_examples():
    rng = np.random.default_rng(1)
    y = rng.integers(0, 2, 50).astype(bool)
    score = np.round(rng.normal(size=50) + y, 1)
    weights = rng.integers(0, 4, size=(3, 50)).astype(float)
    got = stats._weighted_auroc(y, score, weights)
    for row, value in zip(weights.astype(int), got):
        assert value == pytest.approx(roc_auc_score(np.repeat(y, row), np.repeat(score, row)), abs=1e-12)


def test_paired_swap_is_exactly_linear_in_swap_signs():
    rng = np.random.default_rng(2)
    n = 80
    y = rng.integers(0, 2, n)
    a = np.round(rng.normal(size=n) + y, 1)
    b = np.round(rng.normal(size=n) + 0.5 * y, 1)
    weights = stats.paired_swap_weights(y, a, b)
    ranked_a, ranked_b = sps.rankdata(a) / n, sps.rankdata(b) / n
    assert weights.sum() == pytest.approx(roc_auc_score(y, a) - roc_auc_score(y, b), abs=1e-12)
    for _ in range(10):
        swap = rng.random(n) < 0.5
        swapped_a, swapped_b = np.where(swap, ranked_b, ranked_a), np.where(swap, ranked_a, ranked_b)
        explicit = roc_auc_score(y, swapped_a) - roc_auc_score(y, swapped_b)
        assert np.where(swap, -1.0, 1.0) @ weights == pytest.approx(explicit, abs=1e-12)


def test_permutation_nulls_match_their_analytic_spread():
    rng = np.random.default_rng(3)
    y, a, b = binormal_pair(rng, 400, 0.75, 0.70)
    labels = y.astype(bool)
    # Label permutation: Δ is a sum over a random n₁-subset of d_i = (r_a − r_b)/(n₁n₀).
    d = (sps.rankdata(a) - sps.rankdata(b)) / (labels.sum() * (~labels).sum())
    n, n_pos = y.size, labels.sum()
    analytic_label_std = np.sqrt(n_pos * (1 - n_pos / n) * d.var(ddof=1))
    label = stats.label_permutation_test(y, a, b, n_perm=20000, seed=0)
    assert label["null_std"] == pytest.approx(analytic_label_std, rel=0.03)
    # Paired swap: Δ = Σ t_i w_i with independent signs, so the null std is ‖w‖.
    paired = stats.paired_permutation_test(y, a, b, n_perm=20000, seed=0)
    assert paired["null_std"] == pytest.approx(np.linalg.norm(stats.paired_swap_weights(y, a, b)), rel=0.03)
    assert abs(paired["null_mean"]) < 3 * paired["null_std"] / np.sqrt(20000)


def test_delong_standard_error_agrees_with_bootstrap():
    rng = np.random.default_rng(4)
    y, a, b = binormal_pair(rng, 2000, 0.75, 0.70)
    delong = stats.delong_test(y, a, b)
    delta, low, high = stats.paired_bootstrap_delta_auroc(y, a, b, n_boot=2000, seed=0)
    bootstrap_se = (high - low) / (2 * 1.96)
    assert delong["observed_delta"] == pytest.approx(delta, abs=1e-12)
    assert delong["null_std"] == pytest.approx(bootstrap_se, rel=0.15)


def test_identical_scores_give_p_one():
    rng = np.random.default_rng(5)
    y, a, _ = binormal_pair(rng, 200, 0.8, 0.8)
    result = stats.compare_scores(y, a, a, n_boot=200, n_perm=500, seed=0)
    assert result["delta"] == 0.0
    assert result["p_delong"] == 1.0
    assert result["p_paired_permutation"] == 1.0
    assert result["p_label_permutation"] == 1.0


def test_type_one_error_of_paired_tests_under_exchangeability():
    """a and b equally informative (AUROC 0.75 each): rejection rate at α = 0.05 stays near 0.05."""
    rng = np.random.default_rng(6)
    rejections = {"paired": 0, "delong": 0}
    n_datasets = 400
    for i in range(n_datasets):
        y, a, b = binormal_pair(rng, 200, 0.75, 0.75, rho=0.5)
        rejections["paired"] += stats.paired_permutation_test(y, a, b, n_perm=500, seed=i)["p_two_sided"] < 0.05
        rejections["delong"] += stats.delong_test(y, a, b)["p_two_sided"] < 0.05
    for name, count in rejections.items():
        assert 0.02 <= count / n_datasets <= 0.09, (name, count / n_datasets)


def test_type_one_error_of_label_permutation_under_its_own_null():
    """Neither score related to the label: the original study's test holds its level."""
    rng = np.random.default_rng(7)
    n_datasets = 300
    rejections = sum(
        stats.label_permutation_test(*binormal_pair(rng, 200, 0.5, 0.5), n_perm=500, seed=i)["p_two_sided"] < 0.05
        for i in range(n_datasets)
    )
    assert 0.02 <= rejections / n_datasets <= 0.09


def test_power_for_planted_delta_of_005_at_n_2000():
    rng = np.random.default_rng(8)
    n_datasets = 60
    detected = {"paired": 0, "delong": 0}
    for i in range(n_datasets):
        y, a, b = binormal_pair(rng, 2000, 0.75, 0.70, rho=0.3)
        detected["paired"] += stats.paired_permutation_test(y, a, b, n_perm=500, seed=i)["p_two_sided"] < 0.05
        detected["delong"] += stats.delong_test(y, a, b)["p_two_sided"] < 0.05
    for name, count in detected.items():
        assert count / n_datasets >= 0.8, (name, count / n_datasets)


def test_bootstrap_ci_covers_true_delta():
    rng = np.random.default_rng(9)
    true_delta = 0.75 - 0.70
    n_sims = 200
    covered = 0
    for i in range(n_sims):
        y, a, b = binormal_pair(rng, 300, 0.75, 0.70)
        _, low, high = stats.paired_bootstrap_delta_auroc(y, a, b, n_boot=400, seed=i)
        covered += low <= true_delta <= high
    assert 0.90 <= covered / n_sims <= 0.99


def test_ten_thousand_permutations_of_two_thousand_take_seconds():
    rng = np.random.default_rng(10)
    y, a, b = binormal_pair(rng, 2000, 0.75, 0.70)
    start = time.perf_counter()
    result = stats.compare_scores(y, a, b, n_boot=2000, n_perm=10000, seed=0)
    elapsed = time.perf_counter() - start
    assert result["label_permutation"]["n_perm"] == result["paired_permutation"]["n_perm"] == 10000
    assert elapsed < 20.0


def test_compare_scores_reports_three_tests_and_is_deterministic():
    rng = np.random.default_rng(11)
    y, a, b = binormal_pair(rng, 500, 0.80, 0.65)
    first = stats.compare_scores(y, a, b, n_boot=300, n_perm=1000, seed=3)
    second = stats.compare_scores(y, a, b, n_boot=300, n_perm=1000, seed=3)
    assert dumps(first) == dumps(second)
    assert first["delta"] == pytest.approx(first["auroc_a"] - first["auroc_b"])
    assert first["ci_low"] < first["delta"] < first["ci_high"]
    for key in ("label_permutation", "paired_permutation", "delong"):
        sub = first[key]
        assert set(sub) >= {"observed_delta", "p_two_sided", "p_one_sided", "null_mean", "null_std"}
        assert sub["p_one_sided"] < 0.01  # a is planted better than b
        assert first[f"p_{key}"] == sub["p_two_sided"]
    reversed_one_sided = stats.delong_test(y, b, a)["p_one_sided"]
    assert reversed_one_sided > 0.99


@pytest.mark.parametrize(
    "y, a, b, fragment",
    [
        ([1, 1, 1], [0.1, 0.2, 0.3], [0.3, 0.2, 0.1], "both classes"),
        ([0, 1, 2], [0.1, 0.2, 0.3], [0.3, 0.2, 0.1], "0/1"),
        ([0, 1, 1], [0.1, 0.2], [0.3, 0.2, 0.1], "length"),
        ([0, 1, 1], [0.1, np.nan, 0.3], [0.3, 0.2, 0.1], "non-finite"),
        ([0, 1, 1], [0.1, 0.2, 0.3], [0.3, np.inf, 0.1], "non-finite"),
    ],
)
def test_guardrails(y, a, b, fragment):
    with pytest.raises(InputError, match=fragment) as info:
        stats.compare_scores(y, a, b, n_boot=10, n_perm=10)
    assert "\n" not in str(info.value)


def test_holm_adjust_hand_computed():
    # sorted: 0.005·4 = 0.02, 0.01·3 = 0.03, 0.03·2 = 0.06, 0.04·1 = 0.04 → running max 0.02, 0.03, 0.06, 0.06
    adjusted = stats.holm_adjust([0.01, 0.04, 0.03, 0.005])
    np.testing.assert_allclose(adjusted, [0.03, 0.06, 0.06, 0.02])


def test_feature_effect_tests_finds_planted_feature_only():
    rng = np.random.default_rng(12)
    n = 80
    deltas = rng.normal(size=(n, 6))
    deltas[:, 0] += 0.6  # planted effect
    deltas[:, 5] = 0.0  # a feature whose ablation changes nothing
    frame = stats.feature_effect_tests(deltas, alpha=0.05, correction="holm")
    assert "feature" not in frame.columns  # callers insert their own feature ids
    assert list(frame["significant"]) == [True, False, False, False, False, False]
    assert frame.loc[5, "p_wilcoxon"] == 1.0 and frame.loc[5, "p_adjusted"] == 1.0
    assert (frame["p_adjusted"] >= frame["p_wilcoxon"]).all()
    assert frame.loc[0, "ci_low"] < 0.6 < frame.loc[0, "ci_high"]
    assert frame.loc[0, "p_ttest"] < 1e-4
    bh = stats.feature_effect_tests(deltas, correction="bh")
    assert (bh["p_adjusted"] <= frame["p_adjusted"] + 1e-15).all()
    bonferroni = stats.feature_effect_tests(deltas, correction="bonferroni", feature_names=list("abcdef"))
    assert bonferroni["feature"].tolist() == list("abcdef")
    np.testing.assert_allclose(bonferroni["p_adjusted"], np.minimum(6 * frame["p_wilcoxon"], 1.0))
    assert (bonferroni["p_adjusted"] >= frame["p_adjusted"] - 1e-15).all()


def test_feature_effect_tests_guardrails():
    with pytest.raises(InputError, match="non-finite"):
        stats.feature_effect_tests(np.array([[0.0, np.nan], [1.0, 2.0]]))
    with pytest.raises(InputError, match="correction"):
        stats.feature_effect_tests(np.ones((5, 2)), correction="sidak")
    with pytest.raises(InputError, match="2-D"):
        stats.feature_effect_tests(np.ones(5))
