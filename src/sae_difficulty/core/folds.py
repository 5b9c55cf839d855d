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
* :func:`forward_inner_splits` — the original study's inner CV: scikit-learn's
  ``TimeSeriesSplit`` (each fold trains on earlier windows only and scores the next
  block), purged by the same ``gap`` in grid positions.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.model_selection import TimeSeriesSplit

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
    pos, y = _inner_inputs(positions, labels, n_folds, max_folds=None)
    order = np.argsort(pos, kind="stable")
    block_of = np.empty(pos.size, dtype=np.int64)
    block_of[order] = (np.arange(pos.size) * int(n_folds)) // pos.size
    candidates = []
    for block in range(int(n_folds)):
        test = np.flatnonzero(block_of == block)
        others = np.flatnonzero(block_of != block)
        candidates.append((others[purge_mask(pos[others], pos[test], gap)], test))
    return _usable_folds(candidates, y, n_folds, "blocked")


def _inner_inputs(positions: Any, labels: Any, n_folds: int, max_folds: int | None) -> tuple[np.ndarray, np.ndarray]:
    """Positions and 0/1 labels of the training examples, checked against ``n_folds``
    (at most ``max_folds``, default one example per fold)."""
    pos = _positions(positions)
    y = np.asarray(labels).astype(int)
    if y.size != pos.size:
        raise InputError(f"labels: {y.size} labels for {pos.size} positions")
    most = pos.size if max_folds is None else max_folds
    if int(n_folds) < 2 or n_folds > most:
        raise InputError(f"inner_folds: expected 2 <= inner_folds <= {most} for {pos.size} training examples, got {n_folds}")
    return pos, y


def _usable_folds(candidates: list[tuple[np.ndarray, np.ndarray]], y: np.ndarray, n_folds: int, kind: str) -> list[tuple[np.ndarray, np.ndarray]]:
    """The (train, test) folds with both classes on each side (ROC AUC needs them); at least two."""
    splits = [(train, test) for train, test in candidates if np.unique(y[test]).size == 2 and np.unique(y[train]).size == 2]
    if len(splits) < 2:
        raise InputError(
            f"inner CV: only {len(splits)} of {n_folds} {kind} inner folds have both classes on each side; "
            "use fewer inner_folds or more examples"
        )
    return splits


def forward_inner_splits(positions: Any, labels: Any, n_folds: int, gap: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """Inner CV over training examples: scikit-learn's ``TimeSeriesSplit(n_folds)`` in time order, purged by ``gap``.

    Why: the original study chose C for its time-series probes with ``TimeSeriesSplit``
    (forward chaining: fold k trains on the first k blocks in time and scores block k + 1),
    so a probe never trains on windows later than the ones it is scored on. Windows that
    overlap the test block still share time steps with it, so the training windows within
    ``gap`` grid positions of the test block are purged (:func:`purge_mask`; in grid
    positions, not in samples, unlike ``TimeSeriesSplit``'s own ``gap``).

    Same contract as :func:`blocked_inner_splits`: indices are relative to the given
    examples; a fold whose test or training part misses a class is left out; fewer than
    two usable folds is a one-line InputError.
    """
    # TimeSeriesSplit needs one more block than folds (the first block only ever trains).
    pos, y = _inner_inputs(positions, labels, n_folds, max_folds=_positions(positions).size - 1)
    order = np.argsort(pos, kind="stable")
    candidates = []
    for train_rank, test_rank in TimeSeriesSplit(n_splits=int(n_folds)).split(order):
        train, test = order[train_rank], order[test_rank]
        candidates.append((np.sort(train[purge_mask(pos[train], pos[test], gap)]), np.sort(test)))
    return _usable_folds(candidates, y, n_folds, "forward (TimeSeriesSplit)")
