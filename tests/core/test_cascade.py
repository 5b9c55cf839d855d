"""Cascade routing: hand-computed curve, Pareto frontier properties, planted routing signal."""

from __future__ import annotations

import numpy as np
import pytest

from sae_difficulty.core.cascade import (
    best_under_budget,
    cascade_curve,
    cascade_frame,
    cascade_report,
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
