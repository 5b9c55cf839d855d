"""Cascade routing: hand-computed curve, Pareto frontier properties, planted routing signal."""

from __future__ import annotations

import numpy as np
import pytest

from sae_difficulty.core.cascade import (
    best_under_budget,
    cascade_curve,
    cascade_frame,
    cascade_report,
    paired_error_difference,
    pareto_frontier,
)
from sae_difficulty.utils.errors import InputError
from sae_difficulty.utils.io import dumps

SCORE = np.array([0.1, 0.4, 0.3, 0.9])
CHEAP = np.array([0.0, 1.0, 0.0, 1.0])
EXPENSIVE = np.zeros(4)


def test_curve_hand_computed():
    curve = cascade_curve(SCORE, CHEAP, EXPENSIVE, cost_cheap=1.0, cost_expensive=10.0)
    assert curve["threshold"].tolist() == [-np.inf, 0.1, 0.3, 0.4, 0.9]
    assert curve["n_expensive"].tolist() == [4, 3, 2, 1, 0]
    assert curve["cost"].tolist() == pytest.approx([11.0, 8.5, 6.0, 3.5, 1.0])
    # threshold 0.4 routes only the 0.9 example: the 0.4 example's cheap error stays
    assert curve["error"].tolist() == pytest.approx([0.0, 0.0, 0.0, 0.25, 0.5])


def test_frontier_and_budget_hand_computed():
    curve = cascade_curve(SCORE, CHEAP, EXPENSIVE)
    frontier = pareto_frontier(curve)
    assert frontier["cost"].tolist() == pytest.approx([1.0, 3.5, 6.0])
    assert frontier["error"].tolist() == pytest.approx([0.5, 0.25, 0.0])
    assert best_under_budget(curve, 4.0)["threshold"] == 0.4
    assert best_under_budget(curve, 100.0)["cost"] == 6.0  # the cheapest of the zero-error points
    with pytest.raises(InputError, match="budget"):
        best_under_budget(curve, 0.5)


def test_pareto_frontier_contains_no_dominated_point_and_covers_the_curve():
    rng = np.random.default_rng(0)
    n = 300
    curve = cascade_curve(rng.normal(size=n), rng.integers(0, 2, n), rng.integers(0, 2, n))
    frontier = pareto_frontier(curve)
    cost, error = curve["cost"].to_numpy(), curve["error"].to_numpy()
    for c, e in zip(frontier["cost"], frontier["error"]):
        dominated = (cost <= c) & (error <= e) & ((cost < c) | (error < e))
        assert not dominated.any()
    for c, e in zip(cost, error):  # every curve point is matched or beaten by a frontier point
        assert ((frontier["cost"] <= c) & (frontier["error"] <= e)).any()
    assert frontier["cost"].is_monotonic_increasing and frontier["error"].is_monotonic_decreasing
    assert len(frontier) < len(curve)


def test_informative_score_beats_random_routing():
    rng = np.random.default_rng(1)
    n = 2000
    cheap = (rng.random(n) < 0.4).astype(float)
    expensive = cheap * (rng.random(n) < 0.3)  # the expensive model fixes most cheap errors
    informative = cheap + rng.normal(0, 0.7, n)
    uninformative = rng.normal(size=n)
    budget = 1.0 + 0.4 * 10.0  # route 40%
    good = best_under_budget(cascade_curve(informative, cheap, expensive), budget)
    bad = best_under_budget(cascade_curve(uninformative, cheap, expensive), budget)

    def random_routing_error(frac: float) -> float:
        return cheap.mean() + frac * (expensive - cheap).mean()

    assert good["error"] < random_routing_error(good["frac_expensive"]) - 0.05
    assert abs(bad["error"] - random_routing_error(bad["frac_expensive"])) < 0.03


def test_report_reference_points_and_determinism():
    report = cascade_report(SCORE, CHEAP, EXPENSIVE, budgets=[4.0])
    assert report["always_cheap"] == {"frac_expensive": 0.0, "cost": 1.0, "error": 0.5}
    assert report["always_expensive"] == {"frac_expensive": 1.0, "cost": 11.0, "error": 0.0}
    assert report["oracle"] == {"frac_expensive": 0.5, "cost": 6.0, "error": 0.0}
    assert report["best_under_budget"][0]["threshold"] == 0.4
    assert dumps(report) == dumps(cascade_report(SCORE, CHEAP, EXPENSIVE, budgets=[4.0]))
    frame = cascade_frame(report)
    assert frame["on_frontier"].tolist() == [False, False, True, True, True]


def test_custom_thresholds_and_continuous_error():
    curve = cascade_curve(SCORE, [0.5, 2.0, 0.1, 3.0], [0.4, 1.0, 0.2, 0.5], thresholds=[0.35, 0.0])
    assert curve["threshold"].tolist() == [0.0, 0.35]
    assert curve["error"].tolist() == pytest.approx([(0.4 + 1.0 + 0.2 + 0.5) / 4, (0.5 + 1.0 + 0.1 + 0.5) / 4])


def test_guardrails():
    with pytest.raises(InputError, match="length"):
        cascade_curve(SCORE, CHEAP[:3], EXPENSIVE)
    with pytest.raises(InputError, match="non-finite"):
        cascade_curve([0.1, np.nan, 0.2, 0.3], CHEAP, EXPENSIVE)
    with pytest.raises(InputError, match="costs"):
        cascade_curve(SCORE, CHEAP, EXPENSIVE, cost_expensive=0.0)


# --------------------------------------------------------------------------- paired expensive-vs-cheap difference


def _planted_binary_errors(n: int, p_cheap: float, p_expensive: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Errors that share a per-example difficulty (as two models on one task do); rates as given."""
    rng = np.random.default_rng(seed)
    u = rng.random(n)
    return (u < p_cheap).astype(float), (u < p_expensive).astype(float)


def test_paired_difference_planted_better_expensive_excludes_zero():
    cheap, expensive = _planted_binary_errors(400, 0.70, 0.60, seed=1)
    result = paired_error_difference(cheap, expensive, n_boot=2000, seed=0)
    assert result["delta"] == pytest.approx(expensive.mean() - cheap.mean())
    assert result["delta_ci_low"] <= result["delta"] <= result["delta_ci_high"] < 0
    assert result["expensive_better"]
    assert result["relative_ci_high"] < 0


def test_paired_difference_equal_members_cover_zero():
    rng = np.random.default_rng(2)
    cheap = (rng.random(400) < 0.6).astype(float)
    expensive = cheap.copy()
    disagree = rng.choice(400, size=80, replace=False)  # 40 examples only cheap gets wrong, 40 only expensive
    cheap[disagree] = np.arange(80) % 2
    expensive[disagree] = 1 - np.arange(80) % 2
    result = paired_error_difference(cheap, expensive, n_boot=2000, seed=0)
    assert result["delta"] == pytest.approx(0.0)
    assert result["delta_ci_low"] < 0 < result["delta_ci_high"]
    assert not result["expensive_better"]


def test_paired_difference_is_paired():
    """A small difference shared by every example is detected; an unpaired bootstrap would drown it."""
    rng = np.random.default_rng(3)
    base = rng.gamma(2.0, 1.0, size=300)
    result = paired_error_difference(base, 0.97 * base, n_boot=1000, seed=0)
    assert result["relative"] == pytest.approx(-0.03)
    assert result["relative_ci_low"] == pytest.approx(-0.03) and result["relative_ci_high"] == pytest.approx(-0.03)
    assert result["delta_ci_high"] < 0


def test_paired_difference_blocks_widen_the_interval_for_dependent_windows():
    """Errors that drift slowly in time (overlapping windows): blocks give a wider, honest CI."""
    rng = np.random.default_rng(4)
    n, length = 600, 20
    drift = np.repeat(rng.normal(0.0, 1.0, n // length), length)  # runs of `length` correlated windows
    cheap = 2.0 + drift + 0.1 * rng.normal(size=n)
    expensive = cheap + 0.3 * np.repeat(rng.normal(0.0, 1.0, n // length), length)
    iid = paired_error_difference(cheap, expensive, n_boot=2000, seed=0)
    blocked = paired_error_difference(cheap, expensive, n_boot=2000, seed=0, block_length=length)
    assert blocked["block_length"] == length and iid["block_length"] is None
    width_blocked = blocked["delta_ci_high"] - blocked["delta_ci_low"]
    assert width_blocked > 2 * (iid["delta_ci_high"] - iid["delta_ci_low"])


def test_paired_difference_rejects_mismatched_lengths():
    with pytest.raises(InputError, match="length"):
        paired_error_difference(np.zeros(3), np.zeros(4))
