"""ECE/Brier by hand, and on simulated predictors that are calibrated or overconfident by construction."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.special import expit, logit

from sae_difficulty.core import calibration
from sae_difficulty.utils.errors import InputError
from sae_difficulty.utils.io import dumps


def simulated_predictor(n: int, seed: int, overconfidence: float = 1.0):
    """Labels drawn from true probabilities q; reported p = expit(k·logit q), calibrated iff k = 1."""
    rng = np.random.default_rng(seed)
    true_p = rng.uniform(0.02, 0.98, n)
    y = (rng.random(n) < true_p).astype(int)
    return y, expit(overconfidence * logit(true_p))


def test_ece_and_brier_hand_computed():
    y = [0, 1, 1, 0]
    p = [0.05, 0.15, 0.95, 0.85]
    # one example per bin: gaps 0.05, 0.85, 0.05, 0.85, weighted 1/4 each
    assert calibration.ece(y, p, n_bins=10) == pytest.approx(0.45)
    assert calibration.brier(y, p) == pytest.approx((0.05**2 + 0.85**2 + 0.05**2 + 0.85**2) / 4)
    # two bins: [0, .5) holds (0.05, 0.15) → |0.10 − 0.5| ; [.5, 1] holds (0.95, 0.85) → |0.90 − 0.5|
    assert calibration.ece(y, p, n_bins=2) == pytest.approx(0.4)


def test_reliability_curve_bins_edges_and_counts():
    table = calibration.reliability_curve([0, 1, 1, 0, 1], [0.0, 1.0, 0.55, 0.5, 0.999], n_bins=4)
    assert list(table["count"]) == [1, 0, 2, 2]  # p = 1 falls in the last bin, 0.5 in [0.5, 0.75)
    assert np.isnan(table.loc[1, "mean_pred"]) and np.isnan(table.loc[1, "frac_pos"])
    assert table.loc[3, "frac_pos"] == 1.0
    assert table.loc[2, "mean_pred"] == pytest.approx(0.525)
    assert list(table.columns) == ["bin", "lower", "upper", "count", "mean_pred", "frac_pos"]


def test_calibrated_predictor_has_near_zero_ece_and_overconfident_has_large_ece():
    y, p = simulated_predictor(20000, seed=0)
    assert calibration.ece(y, p) < 0.02
    y_over, p_over = simulated_predictor(20000, seed=0, overconfidence=3.0)
    assert calibration.ece(y_over, p_over) > 0.1


@pytest.mark.parametrize("method", ["platt", "isotonic"])
def test_out_of_fold_recalibration_reduces_ece(method):
    y, p = simulated_predictor(5000, seed=1, overconfidence=3.0)
    before = calibration.ece(y, p)
    recalibrated = calibration.recalibrate_oof(y, p, method=method, folds=5, seed=0)
    assert recalibrated.shape == p.shape
    assert calibration.ece(y, recalibrated) < min(0.04, before / 3)
    assert calibration.brier(y, recalibrated) < calibration.brier(y, p)


def test_calibration_report_is_complete_and_deterministic():
    y, p = simulated_predictor(1000, seed=2, overconfidence=2.0)
    report = calibration.calibration_report(y, p, n_bins=10, folds=5, seed=3)
    assert dumps(report) == dumps(calibration.calibration_report(y, p, n_bins=10, folds=5, seed=3))
    assert set(report["metrics"]) == set(report["reliability"]) == {"before", "platt", "isotonic"}
    assert report["metrics"]["platt"]["ece"] < report["metrics"]["before"]["ece"]
    assert sum(row["count"] for row in report["reliability"]["before"]) == 1000
    frame = calibration.calibration_frame(report)
    assert list(frame["version"]) == ["before", "platt", "isotonic"]


def test_guardrails():
    with pytest.raises(InputError, match=r"\[0, 1\]"):
        calibration.ece([0, 1], [0.2, 1.2])
    with pytest.raises(InputError, match=r"\[0, 1\]"):
        calibration.brier([0, 1], [0.2, np.nan])
    with pytest.raises(InputError, match="does not match"):
        calibration.ece([0, 1, 1], [0.2, 0.3])
    with pytest.raises(InputError, match="both classes"):
        calibration.recalibrate_oof([1] * 20, np.linspace(0.1, 0.9, 20))
    with pytest.raises(InputError, match="method"):
        calibration.recalibrate_oof([0, 1] * 10, np.linspace(0.1, 0.9, 20), method="beta")
    with pytest.raises(InputError, match="fewer than folds"):
        calibration.recalibrate_oof([0] * 18 + [1] * 2, np.linspace(0.1, 0.9, 20), folds=5)
