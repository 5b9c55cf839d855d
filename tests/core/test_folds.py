"""Purged, embargoed blocked folds and the blocked inner CV for overlapping windows."""

from __future__ import annotations

import numpy as np
import pytest

from sae_difficulty.core.folds import (
    PurgedBlockedSplits,
    blocked_inner_splits,
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
