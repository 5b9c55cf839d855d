"""Difficulty labels (difficult = 1) from a per-example error.

A continuous error (CRPS, loss) is thresholded at a quantile: of the whole dataset
(``scope="dataset"``, the original study's default; the threshold then sees the test
errors) or of the training split only (``scope="train"``, leakage-free).

A binary error (values only in {0, 1}, e.g. 1 − correct for the LM) is already a
difficulty label: it is returned unchanged with threshold 0.5, whatever the quantile,
because a quantile of a 0/1 variable would be 0 or 1 and ``error > threshold`` would
then label everything 0 or mislabel the ties.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from sae_difficulty.utils.errors import InputError

SCOPES = ("dataset", "train")


def difficulty_labels(
    error: Any,
    split: Any = None,
    quantile: float = 0.75,
    scope: str = "dataset",
) -> tuple[np.ndarray, float]:
    """Return ``(labels, threshold)`` with ``labels = error > threshold`` as int 0/1.

    ``split`` holds one split name per example ("train"/"test"); it is required for
    ``scope="train"``, where the quantile is taken over the ``split == "train"`` errors
    only. Raises InputError on non-finite errors, a bad scope/quantile, or labels that
    come out single-class (no difficulty signal to learn).
    """
    values = np.asarray(error, dtype=float)
    if values.ndim != 1 or values.size == 0:
        raise InputError(f"error: expected a non-empty 1-D array, got shape {values.shape}")
    if not np.isfinite(values).all():
        first = int(np.flatnonzero(~np.isfinite(values))[0])
        raise InputError(f"error: non-finite value {values[first]} at index {first}")
    if scope not in SCOPES:
        raise InputError(f"scope: expected one of {SCOPES}, got {scope!r}")
    if not 0.0 < quantile < 1.0:
        raise InputError(f"quantile: expected a number in (0, 1), got {quantile!r}")

    reference = values
    if scope == "train":
        if split is None:
            raise InputError("split: scope='train' needs the split of every example ('train'/'test')")
        split_names = np.asarray(split).astype(str)
        if split_names.shape != values.shape:
            raise InputError(f"split: length {split_names.size} does not match the {values.size} errors")
        reference = values[split_names == "train"]
        if reference.size == 0:
            raise InputError("split: no example has split 'train', so scope='train' has nothing to take a quantile of")

    if np.all(np.isin(values, (0.0, 1.0))):
        labels, threshold = values.astype(int), 0.5
    else:
        threshold = float(np.quantile(reference, quantile))
        labels = (values > threshold).astype(int)
    if labels.min() == labels.max():
        raise InputError(
            f"error: every difficulty label is {labels[0]} (threshold {threshold:.6g} at quantile {quantile}, "
            f"scope {scope!r}); expected both easy and difficult examples"
        )
    return labels, threshold


def threshold_labels(error: Any, train_index: Any, quantile: float = 0.75) -> tuple[np.ndarray, float]:
    """Labels of EVERY example from the quantile of the ``train_index`` examples' errors only.

    The building block of leakage-free labels: under out-of-fold scoring each fold's
    test examples are labelled with the threshold of that fold's training examples
    (pass the training indices of the fold). Binary errors are returned unchanged (threshold
    0.5). Raises InputError when the training examples come out single-class.
    """
    values = np.asarray(error, dtype=float)
    if values.ndim != 1 or values.size == 0 or not np.isfinite(values).all():
        raise InputError(f"error: expected a non-empty 1-D array of finite values, got shape {values.shape}")
    if not 0.0 < quantile < 1.0:
        raise InputError(f"quantile: expected a number in (0, 1), got {quantile!r}")
    index = np.asarray(train_index)
    if index.ndim != 1 or index.size == 0:
        raise InputError("train_index: expected a non-empty 1-D array of training example indices")
    if np.all(np.isin(values, (0.0, 1.0))):
        labels, threshold = values.astype(int), 0.5
    else:
        threshold = float(np.quantile(values[index], quantile))
        labels = (values > threshold).astype(int)
    if labels[index].min() == labels[index].max():
        raise InputError(
            f"error: every training example's difficulty label is {labels[index][0]} (threshold {threshold:.6g} at "
            f"quantile {quantile}); expected both easy and difficult training examples"
        )
    return labels, threshold


class TrainQuantileLabeler:
    """``labeler(train_index) -> labels of all examples`` with the threshold from those training examples.

    :func:`~sae_difficulty.core.probe.run_ladder` calls it once per outer fold (and for
    the coefficient fit), so no threshold ever sees a test error. ``thresholds`` records
    every threshold taken, in call order.
    """

    def __init__(self, error: Any, quantile: float = 0.75):
        self.error = np.asarray(error, dtype=float)
        self.quantile = float(quantile)
        self.thresholds: list[float] = []

    def __call__(self, train_index: Any) -> np.ndarray:
        labels, threshold = threshold_labels(self.error, train_index, self.quantile)
        self.thresholds.append(threshold)
        return labels
