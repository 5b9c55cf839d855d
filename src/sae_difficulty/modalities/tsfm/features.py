"""Cheap difficulty baselines for a forecast window: classical statistics of its context.

Computed with the libraries that define them: STL decomposition (statsmodels) for the
trend and seasonal strengths of Wang, Smith & Hyndman (2006) as used by ``tsfeatures``,
``statsmodels.tsa.stattools.acf`` for autocorrelations, ``scipy.signal.periodogram`` for
the spectral entropy, ``scipy.stats.linregress`` for the trend slope. Only glue (ratios,
run lengths) is written here. Every value is a finite float (degenerate cases map to 0),
so the columns can go straight into a probe.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd

FEATURE_NAMES = (
    "level",
    "scale",
    "cv",
    "trend_slope",
    "trend_strength",
    "seasonal_strength",
    "acf_lag1",
    "acf_season",
    "spectral_entropy",
    "last_change",
    "last_vs_level",
    "max_flat_run",
    "range_over_scale",
)


def _strength(component_plus_remainder: np.ndarray, remainder: np.ndarray) -> float:
    """max(0, 1 - Var(remainder) / Var(component + remainder)) (Wang, Smith & Hyndman 2006)."""
    total = float(np.var(component_plus_remainder))
    return float(max(0.0, 1.0 - np.var(remainder) / total)) if total > 0 else 0.0


def _max_flat_run(values: np.ndarray) -> int:
    """Longest run of consecutive equal values (a stuck sensor shows up as a long run)."""
    if values.size == 0:
        return 0
    change = np.flatnonzero(np.diff(values) != 0)
    edges = np.concatenate(([-1], change, [values.size - 1]))
    return int(np.diff(edges).max())


def context_features(context: np.ndarray, season: int = 24) -> dict[str, float]:
    """The statistics of one context (1-D, no missing values); see :data:`FEATURE_NAMES`."""
    from scipy.signal import periodogram
    from scipy.stats import linregress
    from statsmodels.tsa.seasonal import STL
    from statsmodels.tsa.stattools import acf

    y = np.asarray(context, dtype=np.float64)
    n = y.size
    level = float(y.mean())
    scale = float(y.std())
    safe_scale = scale if scale > 0 else 1.0
    slope = float(linregress(np.arange(n), y).slope) if n > 1 and scale > 0 else 0.0
    trend_strength = seasonal_strength = 0.0
    if scale > 0 and n >= 2 * season + 1:
        fit = STL(y, period=season, robust=False).fit()
        trend_strength = _strength(fit.trend + fit.resid, fit.resid)
        seasonal_strength = _strength(fit.seasonal + fit.resid, fit.resid)
    acf_lag1 = acf_season = 0.0
    if scale > 0:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            correlations = acf(y, nlags=min(season, n - 1), fft=True)
        acf_lag1 = float(correlations[1]) if correlations.size > 1 else 0.0
        acf_season = float(correlations[season]) if correlations.size > season else 0.0
    spectral_entropy = 0.0
    if scale > 0:
        _, power = periodogram(y, detrend="constant")
        power = power[1:]  # drop the zero frequency (the mean was removed)
        if power.sum() > 0 and power.size > 1:
            p = power / power.sum()
            p = p[p > 0]
            spectral_entropy = float(-(p * np.log(p)).sum() / np.log(power.size))
    features = {
        "level": level,
        "scale": scale,
        "cv": scale / abs(level) if level != 0 else 0.0,
        "trend_slope": slope / safe_scale,
        "trend_strength": trend_strength,
        "seasonal_strength": seasonal_strength,
        "acf_lag1": acf_lag1,
        "acf_season": acf_season,
        "spectral_entropy": spectral_entropy,
        "last_change": float(y[-1] - y[-2]) / safe_scale if n > 1 else 0.0,
        "last_vs_level": float(y[-1] - level) / safe_scale,
        "max_flat_run": float(_max_flat_run(y)),
        "range_over_scale": float(np.ptp(y)) / safe_scale,
    }
    return {name: (value if np.isfinite(value) else 0.0) for name, value in features.items()}


def cheap_feature_table(contexts: np.ndarray, season: int = 24) -> pd.DataFrame:
    """One row per context [N, C], columns ``cheap__<name>`` (finite floats)."""
    rows = [context_features(context, season) for context in np.asarray(contexts, dtype=np.float64)]
    frame = pd.DataFrame(rows, columns=list(FEATURE_NAMES)).astype(np.float64)
    return frame.add_prefix("cheap__")
