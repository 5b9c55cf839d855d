"""Selective prediction: risk–coverage curves and AURC, with the original study's convention.

At coverage c the ``round(c·n)`` examples with the LOWEST risk score are kept and the
risk is their mean error (binary error for LM correctness, continuous for CRPS).
Coverages are ``COVERAGES`` = 0.10, 0.15, ..., 1.00; AURC is the trapezoid over that
grid. The oracle ranks by the error itself; the random selector's risk is the mean
error at every coverage, so ``random_aurc`` is that constant's trapezoid over the same
grid. ``pct_oracle_captured = 100·(random_aurc − aurc)/(random_aurc − oracle_aurc)``.

Ties: examples with equal risk scores are exchangeable, so the risk at a coverage that
cuts through a tie is the expected error over all orderings within the tie (the tied
block contributes its mean error per kept slot). A constant score therefore gives the
random curve exactly; the original study broke ties arbitrarily. Hand-written because
no library implements this convention.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from sae_difficulty.utils.errors import InputError

COVERAGES = np.round(np.arange(0.10, 1.0 + 1e-9, 0.05), 2)
COVERAGES.setflags(write=False)


def _check_inputs(risk_score: Any, error: Any, coverages: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    score = np.asarray(risk_score, dtype=float)
    err = np.asarray(error, dtype=float)
    if score.ndim != 1 or score.size == 0:
        raise InputError(f"risk_score: expected a non-empty 1-D array, got shape {score.shape}")
    if err.shape != score.shape:
        raise InputError(f"error: shape {err.shape} does not match risk_score's {score.shape}")
    for name, values in (("risk_score", score), ("error", err)):
        if not np.isfinite(values).all():
            first = int(np.flatnonzero(~np.isfinite(values))[0])
            raise InputError(f"{name}: non-finite value {values[first]} at index {first}")
    grid = np.asarray(coverages, dtype=float)
    if grid.ndim != 1 or grid.size < 2 or np.any(grid <= 0) or np.any(grid > 1) or np.any(np.diff(grid) <= 0):
        raise InputError("coverages: expected at least 2 strictly increasing values in (0, 1]")
    return score, err, grid


def kept_counts(n: int, coverages: Any = COVERAGES) -> np.ndarray:
    """Examples kept at each coverage: Python's ``round(c·n)``, at least 1."""
    return np.array([max(1, int(round(float(c) * n))) for c in coverages], dtype=int)


def expected_risks(risk_score: np.ndarray, error: np.ndarray, n_kept: np.ndarray) -> np.ndarray:
    """Mean error of the ``k`` lowest-score examples for each k, averaged over orderings within ties."""
    order = np.argsort(risk_score, kind="stable")
    sorted_score, sorted_error = risk_score[order], error[order]
    starts = np.flatnonzero(np.r_[True, sorted_score[1:] != sorted_score[:-1]])
    group_error = np.add.reduceat(sorted_error, starts)
    group_size = np.diff(np.r_[starts, sorted_score.size])
    group_mean = group_error / group_size
    cum_size = np.cumsum(group_size)
    cum_error = np.cumsum(group_error)
    # The group that the k-th kept example falls in; groups before it are kept whole.
    boundary = np.searchsorted(cum_size, n_kept, side="left")
    size_before = cum_size[boundary] - group_size[boundary]
    error_before = cum_error[boundary] - group_error[boundary]
    return error_before / n_kept + ((n_kept - size_before) / n_kept) * group_mean[boundary]


def _aurc(risks: np.ndarray, grid: np.ndarray) -> float:
    return float(np.trapezoid(risks, grid))


def _curve_records(grid: np.ndarray, n_kept: np.ndarray, risks: np.ndarray) -> list[dict[str, float]]:
    return [{"coverage": float(c), "n_kept": int(k), "risk": float(r)} for c, k, r in zip(grid, n_kept, risks)]


def risk_coverage(risk_score: Any, error: Any, coverages: Any = COVERAGES) -> dict[str, Any]:
    """Risk–coverage curve of ``risk_score`` (higher = riskier) for per-example ``error``.

    Returns ``curve`` (list of {coverage, n_kept, risk}), ``aurc``, ``oracle_curve``,
    ``oracle_aurc``, ``random_curve``, ``random_aurc``, ``pct_oracle_captured`` (NaN when
    the error is constant, since then no selector can beat random), ``mean_error`` and ``n``.
    """
    score, err, grid = _check_inputs(risk_score, error, coverages)
    n_kept = kept_counts(score.size, grid)
    risks = expected_risks(score, err, n_kept)
    oracle_risks = expected_risks(err, err, n_kept)
    random_risks = expected_risks(np.zeros_like(err), err, n_kept)
    aurc, oracle_aurc, random_aurc = _aurc(risks, grid), _aurc(oracle_risks, grid), _aurc(random_risks, grid)
    headroom = random_aurc - oracle_aurc
    pct = 100.0 * (random_aurc - aurc) / headroom if headroom > 0 else float("nan")
    return {
        "curve": _curve_records(grid, n_kept, risks),
        "aurc": aurc,
        "oracle_curve": _curve_records(grid, n_kept, oracle_risks),
        "oracle_aurc": oracle_aurc,
        "random_curve": _curve_records(grid, n_kept, random_risks),
        "random_aurc": random_aurc,
        "pct_oracle_captured": float(pct),
        "mean_error": float(err.mean()),
        "n": int(score.size),
    }


def risk_coverage_frame(results: dict[str, dict[str, Any]]) -> pd.DataFrame:
    """Flat table of several :func:`risk_coverage` results (label → result).

    One row per label, curve kind (``model``/``oracle``/``random``) and coverage, with
    the label's ``aurc``, ``oracle_aurc``, ``random_aurc`` and ``pct_oracle_captured``.
    """
    rows = []
    for label, result in results.items():
        summary = {key: result[key] for key in ("aurc", "oracle_aurc", "random_aurc", "pct_oracle_captured")}
        for kind, key in (("model", "curve"), ("oracle", "oracle_curve"), ("random", "random_curve")):
            rows += [{"label": str(label), "kind": kind, **point, **summary} for point in result[key]]
    columns = [
        "label",
        "kind",
        "coverage",
        "n_kept",
        "risk",
        "aurc",
        "oracle_aurc",
        "random_aurc",
        "pct_oracle_captured",
    ]
    return pd.DataFrame(rows, columns=columns)
