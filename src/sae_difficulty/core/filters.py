"""The original study's two example filters for the LM tasks, applied before the probe.

* Near-duplicate prompts: two prompts whose TF-IDF vectors (scikit-learn
  ``TfidfVectorizer`` defaults, L2-normalised rows) have cosine similarity at or above a
  threshold are near duplicates; the later one of each such pair (in tasks order) is
  dropped, from the train and the test split alike, so a test prompt never has a near
  copy on the training side and no prompt counts twice.
* Pretraining contamination: a prompt the model reproduces almost perfectly (prompt-only
  perplexity at or below a threshold, e.g. 1.5) was most likely memorised from the
  pretraining data; it is dropped. The perplexity is the evaluate stage's cheap feature
  of the prompt alone, never of the gold answer.

Both are off (``None``) unless a config sets them. :func:`apply_filters` returns the
mask of kept examples and what each filter dropped (counts per split and the ids), so
the probe and the synthesis can report them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from sae_difficulty.utils.errors import InputError

ROW_BLOCK = (
    1024  # rows of the similarity matrix held at once (memory: ROW_BLOCK x n floats)
)


def near_duplicate_flags(prompts: list[str], threshold: float) -> np.ndarray:
    """True for every prompt that has an *earlier* prompt with TF-IDF cosine >= ``threshold``."""
    from sklearn.feature_extraction.text import TfidfVectorizer

    if not 0 < threshold <= 1:
        raise InputError(
            f"near_duplicate_cosine: expected a cosine in (0, 1], got {threshold!r}"
        )
    n = len(prompts)
    flags = np.zeros(n, dtype=bool)
    if n < 2:
        return flags
    try:
        vectors = (
            TfidfVectorizer().fit_transform(prompts).tocsr()
        )  # rows are L2-normalised
    except ValueError:  # every prompt empty or stop words only: nothing to compare
        return flags
    for start in range(0, n, ROW_BLOCK):
        stop = min(start + ROW_BLOCK, n)
        similarity = (vectors[start:stop] @ vectors[:stop].T).toarray()
        # only earlier prompts count: column j < row i
        earlier = np.arange(stop)[None, :] < np.arange(start, stop)[:, None]
        flags[start:stop] = np.any((similarity >= threshold) & earlier, axis=1)
    return flags


def contamination_flags(prompt_perplexity: Any, threshold: float) -> np.ndarray:
    """True for every prompt whose prompt-only perplexity is at most ``threshold``."""
    values = np.asarray(prompt_perplexity, dtype=np.float64)
    if values.ndim != 1 or not np.all(np.isfinite(values)):
        raise InputError(
            "prompt_perplexity: expected a 1-D array of finite perplexities"
        )
    if threshold < 1:
        raise InputError(
            f"contamination_perplexity: expected a perplexity >= 1, got {threshold!r}"
        )
    return values <= threshold


@dataclass
class FilterResult:
    """``keep`` (bool per example) and, per filter that ran, what it flagged."""

    keep: np.ndarray
    filters: dict[str, dict[str, Any]] = field(default_factory=dict)

    @property
    def n_dropped(self) -> int:
        return int(np.sum(~self.keep))

    def to_dict(self) -> dict[str, Any]:
        return {"n_examples": int(self.keep.size), "n_kept": int(self.keep.sum()), "n_dropped": self.n_dropped,
                "filters": self.filters}  # fmt: skip


def apply_filters(
    ids: list[str],
    split: Any,
    *,
    prompts: list[str] | None = None,
    prompt_perplexity: Any = None,
    near_duplicate_cosine: float | None = None,
    contamination_perplexity: float | None = None,
) -> FilterResult:
    """Drop near-duplicate and memorised prompts; each filter with threshold None is off.

    Each filter flags examples on its own (an example can be flagged by both); an example is
    kept when no filter flags it. Per filter the result records the threshold, the number
    flagged (``n_dropped``), by split, and the flagged ids.
    """
    n = len(ids)
    splits = np.asarray(split).astype(str)
    if splits.shape != (n,):
        raise InputError(f"split: expected {n} split names, got shape {splits.shape}")
    flagged: dict[str, tuple[float, np.ndarray]] = {}
    if near_duplicate_cosine is not None:
        if prompts is None or len(prompts) != n:
            raise InputError(f"near_duplicate_cosine: expected {n} prompts to compare")
        flagged["near_duplicate"] = (
            near_duplicate_cosine,
            near_duplicate_flags(list(prompts), near_duplicate_cosine),
        )
    if contamination_perplexity is not None:
        if prompt_perplexity is None or len(prompt_perplexity) != n:
            raise InputError(
                f"contamination_perplexity: expected {n} prompt perplexities"
            )
        flagged["contamination"] = (
            contamination_perplexity,
            contamination_flags(prompt_perplexity, contamination_perplexity),
        )
    keep = np.ones(n, dtype=bool)
    report = {}
    for name, (threshold, flags) in flagged.items():
        keep &= ~flags
        report[name] = {
            "threshold": float(threshold),
            "n_dropped": int(flags.sum()),
            "n_dropped_by_split": {
                s: int(np.sum(flags & (splits == s)))
                for s in sorted(set(splits.tolist()))
            },
            "ids": [ids[i] for i in np.flatnonzero(flags)],
        }
    return FilterResult(keep=keep, filters=report)
