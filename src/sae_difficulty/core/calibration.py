"""Calibration of predicted probabilities: ECE, Brier, out-of-fold recalibration.

ECE uses equal-width bins on [0, 1] weighted by count (scikit-learn has the reliability
curve, ``calibration_curve``, but no ECE and it drops empty bins, so both are a few
lines here). Recalibration is Platt scaling (a logistic regression on logit p) or
isotonic regression, each fitted out-of-fold so that no example is recalibrated by a
map that saw its own label.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from scipy.special import logit
from sklearn.isotonic import IsotonicRegression
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import brier_score_loss
from sklearn.model_selection import StratifiedKFold

from sae_difficulty.core.stats import check_binary_labels
from sae_difficulty.utils.errors import InputError

METHODS = ("platt", "isotonic")
# logit(p) is unbounded at 0 and 1; clip so Platt scaling sees finite inputs.
_LOGIT_EPS = 1e-6


def _check_probabilities(y: Any, p: Any, require_both: bool = False) -> tuple[np.ndarray, np.ndarray]:
    labels = check_binary_labels(y, "y", require_both=require_both)
    probs = np.asarray(p, dtype=float)
    if probs.shape != labels.shape:
        raise InputError(f"p: shape {probs.shape} does not match the {labels.size} labels")
    outside = ~(np.isfinite(probs) & (probs >= 0) & (probs <= 1))
    if outside.any():
        first = int(np.flatnonzero(outside)[0])
        raise InputError(f"p: expected probabilities in [0, 1], found {probs[first]} at index {first}")
    return labels, probs


def _bin_index(probs: np.ndarray, n_bins: int) -> np.ndarray:
    if int(n_bins) != n_bins or n_bins < 1:
        raise InputError(f"n_bins: expected an integer >= 1, got {n_bins!r}")
    return np.minimum((probs * n_bins).astype(int), n_bins - 1)


def reliability_curve(y: Any, p: Any, n_bins: int = 10) -> pd.DataFrame:
    """Per equal-width bin: ``bin, lower, upper, count, mean_pred, frac_pos`` (NaN if empty)."""
    labels, probs = _check_probabilities(y, p)
    bins = _bin_index(probs, n_bins)
    count = np.bincount(bins, minlength=n_bins)
    sum_pred = np.bincount(bins, weights=probs, minlength=n_bins)
    sum_pos = np.bincount(bins, weights=labels.astype(float), minlength=n_bins)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_pred = np.where(count > 0, sum_pred / np.maximum(count, 1), np.nan)
        frac_pos = np.where(count > 0, sum_pos / np.maximum(count, 1), np.nan)
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    return pd.DataFrame(
        {
            "bin": np.arange(n_bins),
            "lower": edges[:-1],
            "upper": edges[1:],
            "count": count,
            "mean_pred": mean_pred,
            "frac_pos": frac_pos,
        }
    )


def ece(y: Any, p: Any, n_bins: int = 10) -> float:
    """Expected calibration error: Σ_bins (count/n)·|mean prediction − fraction positive|."""
    table = reliability_curve(y, p, n_bins)
    filled = table[table["count"] > 0]
    gaps = np.abs(filled["mean_pred"] - filled["frac_pos"])
    return float((filled["count"] * gaps).sum() / filled["count"].sum())


def brier(y: Any, p: Any) -> float:
    """Brier score: mean squared difference between probability and 0/1 outcome."""
    labels, probs = _check_probabilities(y, p)
    return float(brier_score_loss(labels.astype(int), probs))


def _logit_feature(probs: np.ndarray) -> np.ndarray:
    return logit(np.clip(probs, _LOGIT_EPS, 1 - _LOGIT_EPS))[:, None]


def _fit_predict(method: str, p_train: np.ndarray, y_train: np.ndarray, p_test: np.ndarray) -> np.ndarray:
    if method == "platt":
        model = LogisticRegression(C=np.inf)  # unpenalized: Platt scaling
        model.fit(_logit_feature(p_train), y_train)
        return model.predict_proba(_logit_feature(p_test))[:, 1]
    iso = IsotonicRegression(y_min=0.0, y_max=1.0, increasing=True, out_of_bounds="clip")
    return iso.fit(p_train, y_train.astype(float)).predict(p_test)


def recalibrate_oof(y: Any, p: Any, method: str = "platt", folds: int = 5, seed: int = 0) -> np.ndarray:
    """Recalibrated probabilities, each from a map fitted on the other folds (stratified, seeded)."""
    labels, probs = _check_probabilities(y, p, require_both=True)
    if method not in METHODS:
        raise InputError(f"method: expected one of {METHODS}, got {method!r}")
    if int(folds) != folds or folds < 2:
        raise InputError(f"folds: expected an integer >= 2, got {folds!r}")
    minority = int(min(labels.sum(), (~labels).sum()))
    if minority < folds:
        raise InputError(f"y: only {minority} examples of the minority class, fewer than folds={folds}")
    out = np.empty_like(probs)
    splitter = StratifiedKFold(n_splits=int(folds), shuffle=True, random_state=seed)
    for train, test in splitter.split(probs[:, None], labels):
        out[test] = _fit_predict(method, probs[train], labels[train].astype(int), probs[test])
    return out


def calibration_report(y: Any, p: Any, n_bins: int = 10, folds: int = 5, seed: int = 0) -> dict[str, Any]:
    """ECE and Brier before recalibration and after out-of-fold Platt and isotonic, with reliability tables.

    Keys: ``metrics`` ({before, platt, isotonic} → {ece, brier}), ``reliability``
    (same keys → list of bin records), ``recalibrated`` ({platt, isotonic} → per-example
    probabilities) and ``n, n_bins, folds, seed``.
    """
    labels, probs = _check_probabilities(y, p, require_both=True)
    versions = {"before": probs}
    for method in METHODS:
        versions[method] = recalibrate_oof(labels, probs, method=method, folds=folds, seed=seed)
    return {
        "metrics": {name: {"ece": ece(labels, q, n_bins), "brier": brier(labels, q)} for name, q in versions.items()},
        "reliability": {
            name: reliability_curve(labels, q, n_bins).to_dict(orient="records") for name, q in versions.items()
        },
        "recalibrated": {method: versions[method].tolist() for method in METHODS},
        "n": int(labels.size),
        "n_bins": int(n_bins),
        "folds": int(folds),
        "seed": int(seed),
    }


def calibration_frame(report: dict[str, Any]) -> pd.DataFrame:
    """Flat table of a :func:`calibration_report`: one row per version (before/platt/isotonic)."""
    return pd.DataFrame(
        [{"version": name, "ece": m["ece"], "brier": m["brier"]} for name, m in report["metrics"].items()],
        columns=["version", "ece", "brier"],
    )
