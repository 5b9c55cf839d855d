"""Difficulty labels from a continuous or binary error, dataset- or train-scoped threshold."""

from __future__ import annotations

import numpy as np
import pytest

from sae_difficulty.core.labels import difficulty_labels
from sae_difficulty.utils.errors import InputError


def test_dataset_quantile_threshold():
    labels, threshold = difficulty_labels(np.arange(100.0), quantile=0.75)
    assert threshold == pytest.approx(74.25)
    assert labels.dtype.kind == "i" and labels.sum() == 25
    assert labels[75:].all() and not labels[:75].any()


def test_train_scope_ignores_test_errors():
    rng = np.random.default_rng(0)
    split = np.array(["train"] * 500 + ["test"] * 500)
    error = np.r_[rng.normal(0, 1, 500), rng.normal(2, 1, 500)]  # test errors are planted higher
    labels_train, threshold_train = difficulty_labels(error, split, quantile=0.75, scope="train")
    labels_all, threshold_all = difficulty_labels(error, split, quantile=0.75, scope="dataset")
    assert threshold_train == np.quantile(error[:500], 0.75)
    assert threshold_train < threshold_all - 0.5
    assert labels_train[:500].mean() == pytest.approx(0.25, abs=0.01)
    assert labels_train[500:].mean() > labels_all[500:].mean()


def test_binary_error_is_its_own_label():
    error = np.array([0, 1, 1, 0, 0, 0, 1, 0])
    for quantile in (0.25, 0.75, 0.9):
        labels, threshold = difficulty_labels(error, quantile=quantile)
        assert labels.tolist() == error.tolist()
        assert threshold == 0.5


def test_guardrails():
    with pytest.raises(InputError, match="split"):
        difficulty_labels(np.arange(10.0), scope="train")
    with pytest.raises(InputError, match="scope"):
        difficulty_labels(np.arange(10.0), scope="test")
    with pytest.raises(InputError, match="non-finite"):
        difficulty_labels(np.array([0.1, np.nan]))
    with pytest.raises(InputError, match="every difficulty label"):
        difficulty_labels(np.full(10, 0.3))
    with pytest.raises(InputError, match="quantile"):
        difficulty_labels(np.arange(10.0), quantile=1.5)
    with pytest.raises(InputError, match="no example has split 'train'"):
        difficulty_labels(np.arange(4.0), ["test"] * 4, scope="train")


def test_each_fold_is_labelled_with_its_training_folds_threshold():
    """Pins item 1 of issue 17: in cv mode the threshold used to come from every example (or the whole
    train split), so a fold's test errors set their own label threshold. Now each fold's test examples
    get the quantile of the OTHER folds' errors: a planted upward drift in the last fold makes most of
    its examples difficult, more than the whole-dataset threshold (which sees the drift) gives."""
    from sae_difficulty.core.labels import TrainQuantileLabeler
    from sae_difficulty.core.probe import run_ladder

    rng = np.random.default_rng(1)
    n, folds = 400, np.repeat(np.arange(4), 100)
    error = rng.normal(size=n) + 2.0 * (folds == 3)  # the last block in time drifts upward
    cheap = error[:, None] + rng.normal(size=(n, 1))
    labeler = TrainQuantileLabeler(error, 0.75)
    result = run_ladder({"cheap": cheap}, np.zeros(n, dtype=int) + (error > np.median(error)), folds=folds,
                        rungs=("P1",), relabel=labeler, n_boot=100, n_perm=100)  # fmt: skip
    last = np.flatnonzero(folds == 3)
    threshold_last = np.quantile(error[folds != 3], 0.75)
    assert result.y_eval[last].tolist() == (error[last] > threshold_last).astype(int).tolist()
    assert result.y_eval[last].mean() > 0.6
    whole, _ = difficulty_labels(error, quantile=0.75)
    assert whole[last].mean() < result.y_eval[last].mean() - 0.1
    assert labeler.thresholds[3] == pytest.approx(threshold_last)
