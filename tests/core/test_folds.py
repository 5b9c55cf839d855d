"""Purged, embargoed blocked folds and the blocked and forward (TimeSeriesSplit) inner CVs for overlapping windows."""

from __future__ import annotations

import numpy as np
import pytest

from sae_difficulty.core.folds import (
    PurgedBlockedSplits,
    blocked_inner_splits,
    forward_inner_splits,
    purge_mask,
)
from sae_difficulty.core.resampling import overlap_windows
from sae_difficulty.utils.errors import InputError

CONTEXT, HORIZON, STRIDE, N = 128, 24, 24, 200


def shared_steps(train_starts: np.ndarray, test_starts: np.ndarray, span: int) -> int:
    """Training windows that share at least one time step with some test window."""
    return int(sum(np.any(np.abs(test_starts - s) < span) for s in train_starts))


def test_purged_folds_leave_no_training_window_overlapping_a_test_window():
    """Pins item 2 of issue 17: contiguous blocked folds without a gap (today's TSFM folds) train on
    windows that share time steps with the test block; the purged folds with gap ⌈(C+H)/stride⌉ never do."""
    starts = np.arange(N) * STRIDE
    folds = (np.arange(N) * 5) // N
    gap = overlap_windows(CONTEXT, HORIZON, STRIDE)
    span = CONTEXT + HORIZON
    plain = [shared_steps(starts[folds != k], starts[folds == k], span) for k in range(5)]
    assert sum(plain) > 0
    splits = PurgedBlockedSplits(folds, starts // STRIDE, gap)
    for train, test in splits.split():
        assert shared_steps(starts[train], starts[test], span) == 0
    # an inner fold drops gap windows on each side, an end fold on one side only
    assert splits.n_purged() == [gap, 2 * gap, 2 * gap, 2 * gap, gap]


def test_purge_mask_counts_distance_on_the_window_grid():
    keep = purge_mask(np.array([0, 3, 4, 10, 16, 17]), np.array([10, 11, 12, 13]), gap=3)
    assert keep.tolist() == [True, True, True, False, False, True]


def test_blocked_inner_splits_are_contiguous_and_purged():
    rng = np.random.default_rng(0)
    positions = np.arange(120)
    labels = (rng.random(120) < 0.3).astype(int)
    splits = blocked_inner_splits(positions, labels, 3, gap=4)
    assert len(splits) == 3
    for train, test in splits:
        assert np.all(np.diff(positions[test]) == 1)
        assert np.min(np.abs(positions[train][:, None] - positions[test][None, :])) > 4
    with pytest.raises(InputError, match="inner"):
        blocked_inner_splits(positions, np.r_[np.ones(10), np.zeros(110)].astype(int), 3, gap=4)


def shuffled_windows(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Grid positions 0..n-1 in a random order (the function must sort by time) and labels with both classes."""
    rng = np.random.default_rng(seed)
    return rng.permutation(n), (rng.random(n) < 0.4).astype(int)


def test_forward_inner_splits_never_train_on_a_window_after_the_test_block():
    positions, labels = shuffled_windows(120, 1)
    splits = forward_inner_splits(positions, labels, 3, gap=0)
    assert len(splits) == 3
    for train, test in splits:
        assert positions[train].max() < positions[test].min()  # forward only: the past predicts the future
        assert np.all(np.diff(np.sort(positions[test])) == 1)  # the test part is the next contiguous block
    # expanding window: each fold trains on everything before its test block
    assert [int(positions[test].min()) for _, test in splits] == [30, 60, 90]
    assert [train.size for train, _ in splits] == [30, 60, 90]


def test_forward_inner_splits_purge_the_training_windows_within_gap_of_the_test_block():
    positions, labels = shuffled_windows(120, 2)
    gap = 4
    for train, test in forward_inner_splits(positions, labels, 3, gap=gap):
        first = int(positions[test].min())
        # grid positions, not samples: exactly the windows first-gap .. first-1 are dropped
        assert sorted(positions[train].tolist()) == list(range(first - gap))
        assert np.min(np.abs(positions[train][:, None] - positions[test][None, :])) > gap


def test_forward_inner_splits_drop_folds_missing_a_class():
    positions = np.arange(120)
    labels = np.zeros(120, dtype=int)
    labels[np.r_[5:15, 65:75, 95:105]] = 1  # the test block 30..59 holds no difficult window
    splits = forward_inner_splits(positions, labels, 3, gap=2)
    assert [positions[test].min() for _, test in splits] == [60, 90]
    labels[65:75] = 0  # now only the last test block has both classes
    with pytest.raises(InputError, match="inner CV: only 1 of 3 forward"):
        forward_inner_splits(positions, labels, 3, gap=2)
    with pytest.raises(InputError, match="inner_folds"):
        forward_inner_splits(positions[:3], labels[:3], 3, gap=0)


def test_forward_inner_splits_are_scikit_learns_time_series_split_when_gap_is_zero():
    from sklearn.model_selection import TimeSeriesSplit

    positions, labels = np.arange(97), (np.arange(97) % 3 == 0).astype(int)
    ours = forward_inner_splits(positions, labels, 4, gap=0)
    theirs = list(TimeSeriesSplit(n_splits=4).split(positions))
    assert len(ours) == len(theirs) == 4
    for (train, test), (their_train, their_test) in zip(ours, theirs):
        assert train.tolist() == their_train.tolist() and test.tolist() == their_test.tolist()


def test_ladder_on_windows_uses_purged_folds_blocked_inner_cv_and_block_resampling():
    from sae_difficulty.core.probe import run_ladder

    rng = np.random.default_rng(4)
    n = 240
    y = (rng.random(n) < 0.3).astype(int)
    blocks = {"cheap": rng.normal(size=(n, 2)) + 0.8 * y[:, None], "raw": rng.normal(size=(n, 3)), "sae": rng.normal(size=(n, 3))}
    positions = np.arange(n)
    folds = PurgedBlockedSplits((positions * 4) // n, positions, gap=3)
    train_index = np.flatnonzero(positions < 160)
    result = run_ladder(
        blocks, y, folds=folds, refit_index=train_index, block_length=6, n_boot=200, n_perm=200,
        rungs=("P1", "P2", "P3"), Cs=(0.1, 1.0),
        inner_splits=lambda train, train_y: blocked_inner_splits(positions[train], train_y, 3, 3),
    )  # fmt: skip
    settings = result.settings
    assert settings["resampling"] == "block" and settings["block_length"] == 6 and settings["n_refit"] == 160
    assert settings["inner_cv"] == "given splits" and result.deltas["P3-P2"]["resampling"] == "block"
    assert result.eval_index.size == n and result.table.set_index("rung").loc["P1", "auroc"] > 0.65
