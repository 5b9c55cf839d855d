"""Faithfulness of top-K node sets against random K-sets, for any ``evaluate_kept`` (model-free, numpy).

faithfulness(C) = (m(C) - m(∅)) / (m(full) - m(∅)), with m a per-example metric;
the gap top − mean random gets a percentile bootstrap CI over examples.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from sae_difficulty.core.stats import bootstrap_indices, percentile_interval
from sae_difficulty.evals.circuit.output import CURVE_COLUMNS
from sae_difficulty.utils.errors import InputError


def _check_metric(values: Any, n_examples: int | None, what: str) -> np.ndarray:
    metric = np.asarray(values, dtype=np.float64)
    if metric.ndim != 1 or metric.size < 2:
        raise InputError(f"evaluate_kept({what}): expected a per-example metric vector of >= 2 examples, got shape {metric.shape}")
    if n_examples is not None and metric.size != n_examples:
        raise InputError(f"evaluate_kept({what}): returned {metric.size} examples, expected {n_examples}")
    if not np.isfinite(metric).all():
        raise InputError(f"evaluate_kept({what}): non-finite metric at example {int(np.flatnonzero(~np.isfinite(metric))[0])}")
    return metric


def rank_nodes(attribution: np.ndarray) -> np.ndarray:
    """Node indices by decreasing |attribution|, ties broken by lower index first.

    The magnitude ranks: a node whose ablation would *raise* the metric is as much part
    of the mechanism as one whose ablation lowers it (Marks et al. keep nodes by |IE|).
    """
    return np.lexsort((np.arange(attribution.size), -np.abs(attribution)))


def _gap_statistic(full: np.ndarray, empty: np.ndarray, top: np.ndarray, *randoms: np.ndarray, axis: int = -1) -> np.ndarray:
    """Faithfulness(top) − mean faithfulness(random sets), from per-example metrics (vectorized over resamples)."""
    base = empty.mean(axis=axis)
    scale = full.mean(axis=axis) - base
    with np.errstate(divide="ignore", invalid="ignore"):
        top_faithfulness = (top.mean(axis=axis) - base) / scale
        random_faithfulness = np.mean([(r.mean(axis=axis) - base) / scale for r in randoms], axis=0)
    return top_faithfulness - random_faithfulness


def curve_with_endpoints(
    attribution: np.ndarray,
    evaluate_kept: Callable[[np.ndarray], np.ndarray],
    ks: Sequence[int],
    n_random: int,
    n_boot: int,
    seed: int,
) -> tuple[pd.DataFrame, np.ndarray, np.ndarray]:
    scores = np.asarray(attribution, dtype=np.float64)
    if scores.ndim != 1 or scores.size == 0 or not np.isfinite(scores).all():
        raise InputError(f"attribution: expected a finite 1-D array over the nodes, got shape {scores.shape}")
    n_nodes = scores.size
    ks = sorted({int(k) for k in ks})
    if not ks or ks[0] < 1 or ks[-1] > n_nodes:
        raise InputError(f"ks: expected circuit sizes in [1, {n_nodes}] (the number of nodes), got {ks}")
    if n_random < 1 or n_boot < 1:
        raise InputError(f"n_random and n_boot: expected integers >= 1, got {n_random} and {n_boot}")

    full = _check_metric(evaluate_kept(np.ones(n_nodes, dtype=bool)), None, "all nodes kept")
    empty = _check_metric(evaluate_kept(np.zeros(n_nodes, dtype=bool)), full.size, "no node kept")
    scale = full.mean() - empty.mean()
    if abs(scale) <= 1e-9 + 1e-6 * max(abs(full.mean()), abs(empty.mean())):
        raise InputError(
            f"the metric does not depend on the nodes (mean {full.mean():.6g} with all kept vs {empty.mean():.6g} with none): nothing to explain"
        )

    def faithfulness(metric: np.ndarray) -> float:
        return float((metric.mean() - empty.mean()) / scale)

    order = rank_nodes(scores)
    rng = np.random.default_rng(seed)
    rows = []
    for k in tqdm(ks, desc="circuit faithfulness (K)", leave=False):
        kept = np.zeros(n_nodes, dtype=bool)
        kept[order[:k]] = True
        top = _check_metric(evaluate_kept(kept), full.size, f"top {k}")
        randoms = []
        for _ in range(n_random):
            kept = np.zeros(n_nodes, dtype=bool)
            kept[rng.choice(n_nodes, size=k, replace=False)] = True
            randoms.append(_check_metric(evaluate_kept(kept), full.size, f"random {k}"))
        random_faithfulness = np.array([faithfulness(r) for r in randoms])
        # examples resampled jointly for every metric vector (paired); the ratio is recomputed per resample
        resamples = bootstrap_indices(full.size, n_boot, np.random.default_rng([seed, k]))
        gap_low, gap_high = percentile_interval(_gap_statistic(*(m[resamples] for m in (full, empty, top, *randoms))))
        rows.append(
            {
                "k": k,
                "faithfulness_top": faithfulness(top),
                "faithfulness_random_mean": float(random_faithfulness.mean()),
                "faithfulness_random_sd": float(random_faithfulness.std(ddof=1)) if n_random > 1 else 0.0,
                "gap": faithfulness(top) - float(random_faithfulness.mean()),
                "gap_ci_low": gap_low,
                "gap_ci_high": gap_high,
            }
        )
    return pd.DataFrame(rows, columns=list(CURVE_COLUMNS)), full, empty


def faithfulness_curve(
    attribution: np.ndarray,
    evaluate_kept: Callable[[np.ndarray], np.ndarray],
    ks: Sequence[int] = (5, 10, 20, 50),
    n_random: int = 10,
    n_boot: int = 1000,
    seed: int = 0,
) -> pd.DataFrame:
    """Faithfulness of the top-K nodes (by |attribution|) and of random K-sets, for each K.

    ``evaluate_kept(mask)`` maps a boolean keep-mask over the nodes to a per-example
    metric vector. faithfulness(C) = (mean m_C − mean m_∅) / (mean m_full − mean m_∅).
    ``gap`` = top − mean of ``n_random`` random K-sets (seeded), with a 95% percentile
    bootstrap CI that resamples examples jointly for all metric vectors. Rows:
    ``k, faithfulness_top, faithfulness_random_mean, faithfulness_random_sd, gap,
    gap_ci_low, gap_ci_high``. InputError when m_full ≈ m_∅ (nothing to explain).
    """
    return curve_with_endpoints(attribution, evaluate_kept, ks, n_random, n_boot, seed)[0]
