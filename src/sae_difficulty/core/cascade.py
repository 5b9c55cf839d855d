"""A two-model cascade routed by a difficulty score.

The cheap model always runs. An example whose score exceeds the threshold is ALSO sent
to the expensive model, whose answer is then used; so the cost per example is
``cost_cheap + frac_expensive · cost_expensive`` and the error is the cheap error,
replaced by the expensive error on the routed examples. Sweeping the threshold traces a
cost/error curve; the Pareto frontier keeps the points no other point beats on both.
Hand-written: a sort and a cumulative sum, no library offers this routing rule.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from sae_difficulty.core.resampling import block_bootstrap_weights
from sae_difficulty.core.stats import bootstrap_indices, percentile_interval
from sae_difficulty.utils.errors import InputError

CURVE_COLUMNS = ["threshold", "n_expensive", "frac_expensive", "cost", "error"]
# Budgets are compared with costs computed in floating point.
_BUDGET_TOL = 1e-12


def _check_arrays(**arrays: Any) -> dict[str, np.ndarray]:
    checked = {name: np.asarray(values, dtype=float) for name, values in arrays.items()}
    n = None
    for name, values in checked.items():
        if values.ndim != 1 or values.size == 0:
            raise InputError(f"{name}: expected a non-empty 1-D array, got shape {values.shape}")
        if n is not None and values.size != n:
            raise InputError(f"{name}: length {values.size} does not match the other arrays' {n}")
        n = values.size
        if not np.isfinite(values).all():
            first = int(np.flatnonzero(~np.isfinite(values))[0])
            raise InputError(f"{name}: non-finite value {values[first]} at index {first}")
    return checked


def _check_costs(cost_cheap: float, cost_expensive: float) -> None:
    if not (np.isfinite(cost_cheap) and np.isfinite(cost_expensive) and cost_cheap >= 0 and cost_expensive > 0):
        raise InputError(
            f"costs: expected cost_cheap >= 0 and cost_expensive > 0, got {cost_cheap!r} and {cost_expensive!r}"
        )


def cascade_curve(
    score: Any,
    error_cheap: Any,
    error_expensive: Any,
    cost_cheap: float = 1.0,
    cost_expensive: float = 10.0,
    thresholds: Any = None,
) -> pd.DataFrame:
    """Cost and error of routing ``score > threshold`` to the expensive model, per threshold.

    Default thresholds: −inf (route everything) and every distinct score (the largest
    routes nothing). Columns: ``threshold, n_expensive, frac_expensive, cost`` (mean per
    example) and ``error`` (mean), sorted by threshold.
    """
    arrays = _check_arrays(score=score, error_cheap=error_cheap, error_expensive=error_expensive)
    _check_costs(cost_cheap, cost_expensive)
    values = arrays["score"]
    n = values.size
    if thresholds is None:
        grid = np.concatenate([[-np.inf], np.unique(values)])
    else:
        grid = np.sort(np.asarray(thresholds, dtype=float).ravel())
        if grid.size == 0 or np.isnan(grid).any():
            raise InputError("thresholds: expected a non-empty array of numbers")
    ascending = np.sort(values, kind="stable")
    routed = n - np.searchsorted(ascending, grid, side="right")
    # Routed examples are the top-k scores; a tie block is routed whole, so any order within it works.
    gain = (arrays["error_expensive"] - arrays["error_cheap"])[np.argsort(-values, kind="stable")]
    gain_of_top = np.r_[0.0, np.cumsum(gain)]
    frac = routed / n
    return pd.DataFrame(
        {
            "threshold": grid,
            "n_expensive": routed.astype(int),
            "frac_expensive": frac,
            "cost": cost_cheap + frac * cost_expensive,
            "error": arrays["error_cheap"].mean() + gain_of_top[routed] / n,
        },
        columns=CURVE_COLUMNS,
    )


def pareto_frontier(curve: pd.DataFrame) -> pd.DataFrame:
    """Rows of ``curve`` not dominated in (cost, error), both minimized; sorted by cost.

    Of points with equal cost and error only the first (lowest threshold after sorting)
    is kept.
    """
    missing = {"cost", "error"} - set(curve.columns)
    if missing:
        raise InputError(f"curve: missing column(s) {sorted(missing)}; expected a cascade_curve table")
    if len(curve) == 0:
        raise InputError("curve: empty table")
    ordered = curve.sort_values(["cost", "error"], kind="mergesort")
    errors = ordered["error"].to_numpy()
    best_before = np.r_[np.inf, np.minimum.accumulate(errors)[:-1]]
    return ordered[errors < best_before].reset_index(drop=True)


def best_under_budget(curve: pd.DataFrame, budget: float) -> dict[str, Any]:
    """The lowest-error point with mean cost ≤ ``budget`` (ties: the cheaper one)."""
    feasible = curve[curve["cost"] <= budget + _BUDGET_TOL]
    if feasible.empty:
        raise InputError(f"budget: {budget!r} is below the cheapest point's cost {curve['cost'].min():.6g}")
    best = feasible.sort_values(["error", "cost"], kind="mergesort").iloc[[0]].to_dict(orient="records")[0]
    return {"budget": float(budget), **best}


def cascade_report(
    score: Any,
    error_cheap: Any,
    error_expensive: Any,
    cost_cheap: float = 1.0,
    cost_expensive: float = 10.0,
    budgets: Any = None,
    thresholds: Any = None,
) -> dict[str, Any]:
    """Curve, Pareto frontier, reference points and best points under budgets.

    Reference points: ``always_cheap``, ``always_expensive`` and ``oracle`` (route exactly
    the examples the expensive model gets strictly better). ``oracle_curve`` routes by the
    true gain ``error_cheap − error_expensive``. ``budgets`` defaults to the cost of
    routing 10%, 20%, 30% and 50% of the examples.
    """
    arrays = _check_arrays(score=score, error_cheap=error_cheap, error_expensive=error_expensive)
    _check_costs(cost_cheap, cost_expensive)
    cheap, expensive = arrays["error_cheap"], arrays["error_expensive"]
    curve = cascade_curve(arrays["score"], cheap, expensive, cost_cheap, cost_expensive, thresholds)
    oracle_curve = cascade_curve(cheap - expensive, cheap, expensive, cost_cheap, cost_expensive)
    helped = expensive < cheap
    if budgets is None:
        budgets = [cost_cheap + frac * cost_expensive for frac in (0.1, 0.2, 0.3, 0.5)]

    def point(frac: float, error: float) -> dict[str, float]:
        return {"frac_expensive": float(frac), "cost": float(cost_cheap + frac * cost_expensive), "error": float(error)}

    return {
        "curve": curve.to_dict(orient="records"),
        "frontier": pareto_frontier(curve).to_dict(orient="records"),
        "oracle_curve": oracle_curve.to_dict(orient="records"),
        "always_cheap": point(0.0, cheap.mean()),
        "always_expensive": point(1.0, expensive.mean()),
        "oracle": point(helped.mean(), np.where(helped, expensive, cheap).mean()),
        "best_under_budget": [best_under_budget(curve, float(b)) for b in budgets],
        "cost_cheap": float(cost_cheap),
        "cost_expensive": float(cost_expensive),
        "n": int(cheap.size),
    }


def cascade_frame(report: dict[str, Any]) -> pd.DataFrame:
    """Flat table of a :func:`cascade_report`: its curve with an ``on_frontier`` flag."""
    curve = pd.DataFrame(report["curve"], columns=CURVE_COLUMNS)
    frontier = {(row["threshold"], row["cost"], row["error"]) for row in report["frontier"]}
    curve["on_frontier"] = [(t, c, e) in frontier for t, c, e in zip(curve["threshold"], curve["cost"], curve["error"])]
    return curve


def paired_error_difference(
    error_cheap: Any,
    error_expensive: Any,
    n_boot: int = 2000,
    seed: int = 0,
    block_length: int | None = None,
) -> dict[str, Any]:
    """Is the expensive member better than the cheap one on the same examples?

    A cascade can only help if routing buys something: the expensive model's mean error
    must be below the cheap model's on the examples routed. Reported: both means, the
    difference ``delta = mean(expensive) − mean(cheap)`` (negative = expensive better) and
    the relative difference ``relative = mean(expensive) / mean(cheap) − 1``, each with a
    95 % percentile CI from a *paired* bootstrap (both members' errors resampled with
    the same examples, so their shared difficulty cancels). ``block_length=None`` resamples
    examples i.i.d. (:func:`~sae_difficulty.core.stats.bootstrap_indices`); an integer
    resamples moving blocks of that many consecutive examples
    (:func:`~sae_difficulty.core.resampling.block_bootstrap_weights`), for time-ordered
    windows whose errors are dependent, as the probes do.
    """
    arrays = _check_arrays(error_cheap=error_cheap, error_expensive=error_expensive)
    cheap, expensive = arrays["error_cheap"], arrays["error_expensive"]
    if int(n_boot) != n_boot or n_boot < 1:
        raise InputError(f"n_boot: expected an integer >= 1, got {n_boot!r}")
    n = cheap.size
    rng = np.random.default_rng(seed)
    if block_length is None:
        weights = np.zeros((int(n_boot), n))
        rows = bootstrap_indices(n, int(n_boot), rng)
        np.add.at(weights, (np.arange(int(n_boot))[:, None], rows), 1.0)
    else:
        weights = block_bootstrap_weights(rng, int(n_boot), n, int(block_length))
    cheap_boot, expensive_boot = weights @ cheap / n, weights @ expensive / n
    delta_boot = expensive_boot - cheap_boot
    with np.errstate(divide="ignore", invalid="ignore"):
        relative_boot = np.where(cheap_boot > 0, expensive_boot / cheap_boot - 1.0, np.nan)
    cheap_mean, expensive_mean = float(cheap.mean()), float(expensive.mean())
    delta_low, delta_high = percentile_interval(delta_boot)
    relative_low, relative_high = percentile_interval(relative_boot)
    return {
        "n": int(n),
        "cheap_mean": cheap_mean,
        "expensive_mean": expensive_mean,
        "delta": expensive_mean - cheap_mean,
        "delta_ci_low": delta_low,
        "delta_ci_high": delta_high,
        "relative": expensive_mean / cheap_mean - 1.0 if cheap_mean > 0 else float("nan"),
        "relative_ci_low": relative_low,
        "relative_ci_high": relative_high,
        "expensive_better": bool(delta_high < 0),
        "n_boot": int(n_boot),
        "block_length": None if block_length is None else int(block_length),
        "seed": int(seed),
    }
