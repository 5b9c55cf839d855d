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
