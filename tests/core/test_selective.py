"""Risk–coverage, AURC and percent of oracle against hand-computed values."""

from __future__ import annotations

import numpy as np
import pytest

from sae_difficulty.core.selective import (
    COVERAGES,
    kept_counts,
    risk_coverage,
    risk_coverage_frame,
)
from sae_difficulty.utils.errors import InputError

# n = 20 makes round(c·n) = 2, 3, ..., 20 on the grid: every coverage keeps one more example.
HALF_WRONG = np.array([0.0] * 10 + [1.0] * 10)


def risks(result: dict, key: str = "curve") -> list[float]:
    return [point["risk"] for point in result[key]]


def trapezoid_005(values: list[float]) -> float:
    """Trapezoid rule by hand on the 0.05-spaced grid."""
    return sum(0.05 * (left + right) / 2 for left, right in zip(values[:-1], values[1:]))


def test_coverage_grid():
    assert COVERAGES.tolist() == [
        0.1,
        0.15,
        0.2,
        0.25,
        0.3,
        0.35,
        0.4,
        0.45,
        0.5,
        0.55,
        0.6,
        0.65,
        0.7,
        0.75,
        0.8,
        0.85,
        0.9,
        0.95,
        1.0,
    ]
    assert kept_counts(20).tolist() == list(range(2, 21))


def test_perfect_score_hand_computed():
    result = risk_coverage(np.arange(20.0), HALF_WRONG)  # the 10 errors have the highest scores
    expected = [0.0] * 9 + [(k - 10) / k for k in range(11, 21)]  # k = 2..10 kept are all right
    assert risks(result) == pytest.approx(expected)
    assert result["aurc"] == pytest.approx(trapezoid_005(expected))
    assert result["oracle_aurc"] == pytest.approx(result["aurc"])
    assert result["random_aurc"] == pytest.approx(0.5 * 0.9)
    assert risks(result, "random_curve") == [0.5] * 19
    assert result["pct_oracle_captured"] == pytest.approx(100.0)


def test_reversed_score_hand_computed():
    result = risk_coverage(-np.arange(20.0), HALF_WRONG)  # the errors are kept first
    expected = [1.0] * 9 + [10 / k for k in range(11, 21)]
    oracle = [0.0] * 9 + [(k - 10) / k for k in range(11, 21)]
    assert risks(result) == pytest.approx(expected)
    assert result["aurc"] == pytest.approx(trapezoid_005(expected))
    assert result["pct_oracle_captured"] == pytest.approx(
        100 * (0.45 - trapezoid_005(expected)) / (0.45 - trapezoid_005(oracle))
    )
    assert result["pct_oracle_captured"] == pytest.approx(-100.0)  # worst-first mirrors the oracle here


def test_constant_score_gives_the_random_curve_exactly():
    # Sorted errors: any fixed tie-break (index order) would give the oracle curve instead.
    result = risk_coverage(np.ones(20), HALF_WRONG)
    assert risks(result) == risks(result, "random_curve") == [0.5] * 19
    assert result["aurc"] == result["random_aurc"]
    assert result["pct_oracle_captured"] == 0.0


def test_partial_tie_uses_expected_error_within_the_tie():
    score = np.array([0.0] * 4 + [1.0] * 16)
    error = np.array([1.0, 0.0, 0.0, 0.0] + [0.0, 1.0] * 8)
    result = risk_coverage(score, error)
    # k = 2, 3, 4 lie inside the first tie (mean error 1/4); k = 5 adds one slot of the second (mean 1/2)
    assert risks(result)[:4] == pytest.approx([0.25, 0.25, 0.25, (1 + 0.5) / 5])
    assert risks(result)[-1] == pytest.approx(9 / 20)


def test_continuous_error_orders_selectors_by_quality():
    rng = np.random.default_rng(0)
    crps = rng.gamma(2.0, 1.0, 2000)
    oracle_like = risk_coverage(crps, crps)
    informative = risk_coverage(crps + rng.normal(0, 1.0, 2000), crps)
    noise = risk_coverage(rng.normal(size=2000), crps)
    assert oracle_like["pct_oracle_captured"] == pytest.approx(100.0)
    assert 20 < informative["pct_oracle_captured"] < 95
    assert abs(noise["pct_oracle_captured"]) < 10
    assert oracle_like["oracle_aurc"] < informative["aurc"] < noise["aurc"]


def test_constant_error_has_undefined_percent_of_oracle():
    result = risk_coverage(np.arange(10.0), np.full(10, 0.3))
    assert np.isnan(result["pct_oracle_captured"])


def test_frame_is_flat():
    frame = risk_coverage_frame({"probe": risk_coverage(np.arange(20.0), HALF_WRONG)})
    assert len(frame) == 3 * 19
    assert set(frame["kind"]) == {"model", "oracle", "random"}


def test_guardrails():
    with pytest.raises(InputError, match="does not match"):
        risk_coverage([0.1, 0.2], [0, 1, 1])
    with pytest.raises(InputError, match="non-finite"):
        risk_coverage([0.1, np.nan], [0, 1])
    with pytest.raises(InputError, match="coverages"):
        risk_coverage([0.1, 0.2], [0, 1], coverages=[0.5, 0.2])
