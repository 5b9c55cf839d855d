"""Cross-validation folds for time-ordered, overlapping examples (forecast windows).

Two windows whose positions on the window grid are fewer than ⌈(context + horizon) /
stride⌉ apart share time steps. A probe fitted on a window and scored on its neighbour
has then seen part of the neighbour's data. Here a training example is *purged* when it
lies within ``gap`` grid positions of any test example, on either side (purge before,
embargo after the test block: de Prado 2018, ch. 7):

* :class:`PurgedBlockedSplits` — outer folds from fold ids (contiguous blocks in time),
  each training part purged around its test block; a scikit-learn style splitter, so
  :func:`~sae_difficulty.core.probe.run_ladder` takes it as ``folds``;
* :func:`blocked_inner_splits` — the inner CV that chooses C: contiguous blocks of the
  training examples in time order, purged the same way (instead of a shuffled
  stratified K-fold, which puts a window's neighbours on both sides).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from sae_difficulty.utils.errors import InputError


def _positions(positions: Any, n: int | None = None) -> np.ndarray:
    values = np.asarray(positions)
    if values.ndim != 1 or not np.issubdtype(values.dtype, np.integer):
        raise InputError(f"positions: expected a 1-D integer array of window grid positions, got dtype {values.dtype} shape {values.shape}")
    if n is not None and values.size != n:
        raise InputError(f"positions: {values.size} positions for {n} examples")
    return values.astype(np.int64)


def _check_gap(gap: Any) -> int:
    if int(gap) != gap or gap < 0:
        raise InputError(f"gap: expected an integer >= 0 (windows purged on each side of a test block), got {gap!r}")
    return int(gap)


def purge_mask(candidate_positions: Any, test_positions: Any, gap: int) -> np.ndarray:
    """True for the candidates that stay: farther than ``gap`` grid positions from every test position."""
    candidates = _positions(candidate_positions)
    tests = np.sort(_positions(test_positions))
    gap = _check_gap(gap)
    if tests.size == 0 or gap == 0:
        return np.ones(candidates.size, dtype=bool)
    right = np.searchsorted(tests, candidates, side="left")
    nearest = np.full(candidates.size, np.iinfo(np.int64).max)
    has_right = right < tests.size
    nearest[has_right] = tests[right[has_right]] - candidates[has_right]
    has_left = right > 0
    nearest[has_left] = np.minimum(nearest[has_left], candidates[has_left] - tests[right[has_left] - 1])
    return nearest > gap


class PurgedBlockedSplits:
    """Outer folds by fold id with every training part purged of examples within ``gap`` of its test part.

    ``fold_ids`` (int per example) name the test fold; ``positions`` (int per example) are
    grid positions in time (window start // stride). ``split()`` yields (train, test) index
    arrays like a scikit-learn splitter.
    """

    def __init__(self, fold_ids: Any, positions: Any, gap: int):
        folds = np.asarray(fold_ids)
        if folds.ndim != 1 or not np.issubdtype(folds.dtype, np.integer):
            raise InputError(f"fold_ids: expected integer fold ids, got dtype {folds.dtype} shape {folds.shape}")
        if np.unique(folds).size < 2:
            raise InputError("fold_ids: need at least 2 distinct folds")
        self.fold_ids = folds
        self.positions = _positions(positions, folds.size)
        self.gap = _check_gap(gap)

    def get_n_splits(self, X: Any = None, y: Any = None, groups: Any = None) -> int:
        return int(np.unique(self.fold_ids).size)

    def split(self, X: Any = None, y: Any = None, groups: Any = None):
        for fold in np.unique(self.fold_ids):
            test = np.flatnonzero(self.fold_ids == fold)
            others = np.flatnonzero(self.fold_ids != fold)
            keep = purge_mask(self.positions[others], self.positions[test], self.gap)
            yield others[keep], test

    def n_purged(self) -> list[int]:
        """Training examples dropped by the purge, per fold."""
        return [int(np.sum(self.fold_ids != f)) - tr.size for f, (tr, _) in zip(np.unique(self.fold_ids), self.split())]


def blocked_inner_splits(positions: Any, labels: Any, n_folds: int, gap: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """Inner CV over training examples: ``n_folds`` contiguous blocks in time, purged by ``gap``.

    Indices are relative to the given examples. A block whose test or training part
    misses a class cannot score ROC AUC and is left out; fewer than two usable blocks is
    a one-line InputError.
    """
    pos = _positions(positions)
    y = np.asarray(labels).astype(int)
    if y.size != pos.size:
        raise InputError(f"labels: {y.size} labels for {pos.size} positions")
    if int(n_folds) < 2 or pos.size < n_folds:
        raise InputError(f"inner_folds: expected 2 <= inner_folds <= {pos.size} training examples, got {n_folds}")
    order = np.argsort(pos, kind="stable")
    block_of = np.empty(pos.size, dtype=np.int64)
    block_of[order] = (np.arange(pos.size) * int(n_folds)) // pos.size
    splits = []
    for block in range(int(n_folds)):
        test = np.flatnonzero(block_of == block)
        others = np.flatnonzero(block_of != block)
        train = others[purge_mask(pos[others], pos[test], gap)]
        if np.unique(y[test]).size == 2 and np.unique(y[train]).size == 2:
            splits.append((train, test))
    if len(splits) < 2:
        raise InputError(
            f"inner CV: only {len(splits)} of {n_folds} blocked inner folds have both classes on each side; "
            "use fewer inner_folds or more examples"
        )
    return splits
