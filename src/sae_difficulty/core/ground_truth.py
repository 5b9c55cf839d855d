"""Stability across seeds against recovery of a known dictionary, feature by feature.

With a planted (true) dictionary, each learned feature (a decoder row) has two numbers:

* its **recovery**: the largest |cosine| to any true feature (1 = it is a true feature);
* its **stability**: its best |cosine| match in each *other* seed's dictionary of the
  same recipe, averaged over those seeds (1 = every other seed learned it too).

A feature is **stable** when its best match in *every* other seed reaches the stability
threshold (all seeds agree on it: a feature missing from any other seed is not stable),
and **true** when its recovery reaches the truth threshold. The question "when seeds
agree, are they right?" is then (a) the rank correlation between stability and recovery
within a recipe and (b) the precision of "stable" as a detector of "true" beside the
share of true features among the rest.

Features are nested in seeds (one dictionary per seed), so intervals come from a
two-level bootstrap: resample seeds with replacement, then features within each drawn
seed (Davison & Hinkley 1997, §3.8). Numpy/scipy only.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy.stats import rankdata

from sae_difficulty.core.verdicts import (
    ADDS_SIGNAL,
    INCONCLUSIVE,
    WORSE,
    delta_verdict,
    equivalent_label,
)
from sae_difficulty.utils.errors import InputError

CI_LEVELS = (0.95, 0.90)
PREDICTS = "stability predicts truth"
MISLEADS = "stability misleads"


def _unit(name: str, rows: Any) -> np.ndarray:
    array = np.asarray(rows, dtype=np.float64)
    if array.ndim != 2 or array.shape[0] == 0 or not np.all(np.isfinite(array)):
        raise InputError(f"{name}: expected a finite, non-empty 2-D array [n_features, d], got shape {array.shape}")
    norms = np.linalg.norm(array, axis=1, keepdims=True)
    return array / np.maximum(norms, 1e-12)  # a zero row (a dead feature's decoder) matches nothing


def best_matches(learned: Any, reference: Any, chunk_rows: int = 2048) -> tuple[np.ndarray, np.ndarray]:
    """For each row of ``learned``: its largest |cosine| to a row of ``reference`` and that row's index."""
    a, b = _unit("learned", learned), _unit("reference", reference)
    if a.shape[1] != b.shape[1]:
        raise InputError(f"reference: dimension {b.shape[1]} does not match the learned dictionary's {a.shape[1]}")
    values, index = np.empty(a.shape[0]), np.empty(a.shape[0], dtype=np.int64)
    for start in range(0, a.shape[0], chunk_rows):
        sims = np.abs(a[start : start + chunk_rows] @ b.T)
        index[start : start + chunk_rows] = sims.argmax(axis=1)
        values[start : start + chunk_rows] = sims.max(axis=1)
    return values, index


def cross_seed_matches(dictionaries: Sequence[Any]) -> list[np.ndarray]:
    """Per seed ``s``, ``[n_features_s, S - 1]``: each feature's best |cosine| in every other seed (in seed order)."""
    if len(dictionaries) < 2:
        raise InputError(f"dictionaries: need at least two seeds to measure stability, got {len(dictionaries)}")
    out = []
    for s, own in enumerate(dictionaries):
        others = [best_matches(own, other)[0] for t, other in enumerate(dictionaries) if t != s]
        out.append(np.column_stack(others))
    return out


def stability_scores(matches: np.ndarray) -> np.ndarray:
    """A feature's stability: its mean best match over the other seeds."""
    return np.asarray(matches, dtype=np.float64).mean(axis=1)


def is_stable(matches: np.ndarray, threshold: float) -> np.ndarray:
    """All other seeds agree: the best match in *every* other seed is at least ``threshold``."""
    return np.asarray(matches, dtype=np.float64).min(axis=1) >= threshold


def spearman(x: np.ndarray, y: np.ndarray) -> float:
    """Spearman's rank correlation (average ranks for ties); NaN when either side is constant."""
    rx, ry = rankdata(x), rankdata(y)
    rx, ry = rx - rx.mean(), ry - ry.mean()
    denominator = np.sqrt((rx * rx).sum() * (ry * ry).sum())
    return float((rx * ry).sum() / denominator) if denominator > 0 else float("nan")


def detector(stable: np.ndarray, true: np.ndarray) -> dict[str, float]:
    """Precision of "stable" as a detector of "true", its recall, the base rate, and the share
    of true features among the unstable ones (NaN where a group is empty)."""
    stable, true = np.asarray(stable, dtype=bool), np.asarray(true, dtype=bool)

    def share(mask: np.ndarray) -> float:
        return float(true[mask].mean()) if mask.any() else float("nan")

    return {
        "precision": share(stable), "true_among_unstable": share(~stable), "base_rate": float(true.mean()),
        "recall": float(stable[true].mean()) if true.any() else float("nan"),
        "stable_fraction": float(stable.mean()), "lift": share(stable) - share(~stable),
    }  # fmt: skip


@dataclass(frozen=True)
class SeedFeatures:
    """One seed's features: stability matches ``[n, S-1]``, recovery ``[n]`` and the alive mask ``[n]``."""

    matches: np.ndarray
    recovery: np.ndarray
    alive: np.ndarray

    def kept(self) -> tuple[np.ndarray, np.ndarray]:
        """Matches and recovery of the alive features (a dead feature's decoder row was never used)."""
        return self.matches[self.alive], self.recovery[self.alive]


def group_statistics(seeds: Sequence[SeedFeatures], stable_threshold: float, true_threshold: float) -> dict[str, float]:
    """Spearman(stability, recovery) and the detector, pooled over the seeds of one recipe cell."""
    matches = np.vstack([s.kept()[0] for s in seeds])
    recovery = np.concatenate([s.kept()[1] for s in seeds])
    if recovery.size < 3:
        raise InputError(f"features: need at least 3 alive features in a recipe cell, got {recovery.size}")
    return {"spearman": spearman(stability_scores(matches), recovery), "n_features": int(recovery.size),
            **detector(is_stable(matches, stable_threshold), recovery >= true_threshold)}  # fmt: skip


def _resample(seeds: Sequence[SeedFeatures], rng: np.random.Generator) -> list[SeedFeatures]:
    """Two-level resample: seeds with replacement, then alive features within each drawn seed."""
    drawn = []
    for index in rng.integers(0, len(seeds), size=len(seeds)):
        matches, recovery = seeds[index].kept()
        rows = rng.integers(0, recovery.size, size=recovery.size)
        drawn.append(SeedFeatures(matches[rows], recovery[rows], np.ones(rows.size, dtype=bool)))
    return drawn


def _interval(values: np.ndarray, level: float) -> tuple[float, float]:
    finite = values[np.isfinite(values)]
    if finite.size == 0:
        return float("nan"), float("nan")
    alpha = (1.0 - level) / 2.0
    low, high = np.quantile(finite, [alpha, 1.0 - alpha])
    return float(low), float(high)


def stability_vs_recovery(cells: Mapping[str, Sequence[SeedFeatures]], stable_threshold: float, true_threshold: float,
                          n_boot: int, seed: int) -> dict[str, Any]:  # fmt: skip
    """Per recipe cell and averaged over cells: Spearman(stability, recovery) and the detector's lift,
    each with 95 % and 90 % two-level bootstrap CIs.

    The average over cells is the headline: pooling cells would let differences *between*
    recipes (one recipe both less stable and less right) pass for a per-feature relation.
    Each bootstrap replicate resamples every cell, so the mean's CI carries all of them.
    """
    if not cells:
        raise InputError("cells: no recipe cell to analyse")
    if n_boot < 1:
        raise InputError(f"n_boot: expected >= 1, got {n_boot}")
    names = sorted(cells)
    rng = np.random.default_rng(seed)
    points = {name: group_statistics(cells[name], stable_threshold, true_threshold) for name in names}
    keys = ("spearman", "lift", "precision")
    draws = {name: {key: np.empty(n_boot) for key in keys} for name in names}
    for b in range(n_boot):
        for name in names:
            stats = group_statistics(_resample(cells[name], rng), stable_threshold, true_threshold)
            for key in keys:
                draws[name][key][b] = stats[key]
    result: dict[str, Any] = {"cells": {}, "n_boot": n_boot, "stable_threshold": stable_threshold,
                              "true_threshold": true_threshold}  # fmt: skip
    for name in names:
        entry = dict(points[name])
        for key in keys:
            for level in CI_LEVELS:
                entry[f"{key}_ci{round(level * 100)}"] = _interval(draws[name][key], level)
        result["cells"][name] = entry
    for key in ("spearman", "lift"):
        stacked = np.vstack([draws[name][key] for name in names])
        with warnings.catch_warnings():  # a replicate with no stable feature in any cell has no lift: NaN, dropped
            warnings.simplefilter("ignore", RuntimeWarning)
            replicate_means = np.nanmean(np.where(np.isfinite(stacked), stacked, np.nan), axis=0)
        values = [points[name][key] for name in names]
        result[f"mean_{key}"] = float(np.nanmean(values)) if np.isfinite(values).any() else float("nan")
        for level in CI_LEVELS:
            result[f"mean_{key}_ci{round(level * 100)}"] = _interval(replicate_means, level)
    return result


def verdict_words(margin: float) -> tuple[str, str, str, str]:
    """The four verdicts this question may get (the synthesis' scheme with its own words)."""
    return (PREDICTS, MISLEADS, equivalent_label(margin), INCONCLUSIVE)


def stability_verdict(ci95: tuple[float, float], ci90: tuple[float, float], margin: float) -> str:
    """The verdict on the stability-recovery correlation, by :func:`core.verdicts.delta_verdict`'s rule
    (95 % CI above 0 / below 0 / 90 % CI inside ±margin / otherwise), in this question's words."""
    if not (isinstance(margin, (int, float)) and 0 < margin < 1):
        raise InputError(f"synthetic.answer.equivalence_margin: expected a number in (0, 1) (correlation units), got {margin!r}")
    word = delta_verdict(ci95, ci90, margin)
    return {ADDS_SIGNAL: PREDICTS, WORSE: MISLEADS}.get(word, word)
