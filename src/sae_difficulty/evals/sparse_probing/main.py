"""SAEBench-style sparse probing: do k SAE latents predict a binary concept better than k raw dims?

For each task and each representation (``sae`` codes, ``raw`` residual activations), and each
``k`` in ``config.ks``: the top-``k`` columns by absolute difference of class means on the
TRAIN split (SAEBench's selection rule) feed a StandardScaler + LogisticRegression pipeline
fitted on train; accuracy is measured on test with a 95% percentile bootstrap CI over test
examples. ``k = FULL_K`` (-1) is the dense probe on every column. At every k the accuracy
difference sae − raw gets a paired bootstrap CI: both probes are scored on the same
resampled test examples (one seeded set of resamples per task, shared by every row).

Model-free (numpy / scikit-learn); hand-written only the mean-difference selection and the
accuracy bootstrap, which are a few lines each and not in scikit-learn.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import train_test_split
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler

from sae_difficulty.core.stats import (
    bootstrap_indices,
    check_binary_labels,
    percentile_interval,
)
from sae_difficulty.evals.base import EvalResult
from sae_difficulty.evals.sparse_probing.config import SparseProbingConfig
from sae_difficulty.evals.sparse_probing.output import (
    FULL_K,
    TABLE_COLUMNS,
    SparseProbingOutput,
)
from sae_difficulty.utils.errors import InputError
from sae_difficulty.utils.io import to_jsonable

# --------------------------------------------------------------------------- helpers


def train_test_split_indices(
    n: int, test_fraction: float, seed: int, stratify: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Sorted (train, test) index arrays of a seeded split of ``n`` examples (scikit-learn's
    ``train_test_split``; pass the labels as ``stratify`` to keep class shares)."""
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 2:
        raise InputError(f"n: expected an integer >= 2, got {n!r}")
    if not 0 < test_fraction < 1:
        raise InputError(f"test_fraction: expected a number in (0, 1), got {test_fraction!r}")
    if stratify is not None and len(stratify) != n:
        raise InputError(f"stratify: {len(stratify)} labels for {n} examples")
    try:
        train, test = train_test_split(np.arange(n), test_size=test_fraction, random_state=seed, stratify=stratify)
    except ValueError as error:  # e.g. a class too small to stratify
        raise InputError(f"train_test_split_indices: {str(error).splitlines()[0]}") from error
    return np.sort(train), np.sort(test)


def top_k_by_mean_difference(x_train: np.ndarray, y_train: np.ndarray, k: int) -> np.ndarray:
    """Indices of the ``k`` columns with the largest |mean(x | y=1) − mean(x | y=0)| on the
    training split, largest first (ties: lower index first). SAEBench's selection rule."""
    labels = np.asarray(y_train, dtype=bool)
    difference = np.abs(x_train[labels].mean(axis=0) - x_train[~labels].mean(axis=0))
    return np.argsort(-difference, kind="stable")[:k]


def _index(name: str, values: Any, n: int) -> np.ndarray:
    index = np.asarray(values)
    if index.ndim != 1 or index.size == 0 or not np.issubdtype(index.dtype, np.integer):
        raise InputError(f"{name}: expected a non-empty 1-D integer index array, got shape {index.shape}")
    if index.min() < 0 or index.max() >= n:
        raise InputError(f"{name}: indices must lie in [0, {n}), got {index.min()}..{index.max()}")
    return index


def _matrix(task: str, name: str, values: Any, n: int) -> np.ndarray:
    matrix = np.asarray(values, dtype=np.float64)
    if matrix.ndim != 2 or matrix.shape[1] == 0:
        raise InputError(f"{task}: {name} expected a 2-D array [n_examples, n_columns], got shape {matrix.shape}")
    if matrix.shape[0] != n:
        raise InputError(f"{task}: {name} has {matrix.shape[0]} rows but y has {n} labels")
    if not np.all(np.isfinite(matrix)):
        raise InputError(f"{task}: {name} contains non-finite values")
    return matrix


def _bootstrap_indices(n_test: int, config: SparseProbingConfig) -> np.ndarray:
    """The task's seeded test-set resamples [n_boot, n_test], shared by every probe (paired)."""
    return bootstrap_indices(n_test, config.n_boot, np.random.default_rng(config.seed))


def _fit_correct(
    x: np.ndarray, y: np.ndarray, train: np.ndarray, test: np.ndarray, config: SparseProbingConfig
) -> np.ndarray:
    """0/1 correctness of a standardized logistic probe fitted on ``train``, on ``test``."""
    probe = Pipeline(
        [
            ("scale", StandardScaler()),
            ("logistic", LogisticRegression(C=config.C, max_iter=config.max_iter, random_state=config.seed)),
        ]
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        probe.fit(x[train], y[train])
    return (probe.predict(x[test]) == y[test]).astype(np.int8)


# --------------------------------------------------------------------------- one task


def sparse_probe_task(
    task: str,
    x_sae: np.ndarray,
    x_raw: np.ndarray,
    y: np.ndarray,
    train_idx: np.ndarray,
    test_idx: np.ndarray,
    config: SparseProbingConfig | None = None,
) -> pd.DataFrame:
    """k-sparse and dense probes on SAE codes and raw activations for one binary task.

    Returns one row per (representation, k) with the columns of ``TABLE_COLUMNS`` plus
    ``test_correct`` (per test example 0/1, what the paired bootstraps resample):
    ``k`` is an int and ``FULL_K`` (-1) marks the dense probe (``selected`` None, ``n_features``
    = the width); ``selected`` lists the chosen columns, best first; ``delta_vs_raw`` and its
    CI (paired bootstrap, sae − raw at the same k) are filled on the ``sae`` rows and NaN on
    the ``raw`` rows.
    """
    config = config or SparseProbingConfig()
    labels_all = np.asarray(y)
    if labels_all.ndim != 1:
        raise InputError(f"{task}: y expected a 1-D label array, got shape {labels_all.shape}")
    n = labels_all.size
    train = _index(f"{task}: train_idx", train_idx, n)
    test = _index(f"{task}: test_idx", test_idx, n)
    if np.intersect1d(train, test).size:
        raise InputError(f"{task}: train_idx and test_idx overlap ({np.intersect1d(train, test).size} examples)")
    check_binary_labels(labels_all[train], name=f"{task}: y[train_idx]")
    check_binary_labels(labels_all[test], name=f"{task}: y[test_idx]")
    labels = labels_all.astype(int)
    matrices = {"sae": _matrix(task, "x_sae", x_sae, n), "raw": _matrix(task, "x_raw", x_raw, n)}
    for representation, matrix in matrices.items():
        too_wide = [k for k in config.ks if k > matrix.shape[1]]
        if too_wide:
            raise InputError(
                f"{task}: k={too_wide[0]} exceeds the {matrix.shape[1]} columns of the {representation} representation"
            )

    resamples = _bootstrap_indices(test.size, config)
    rows, correct = [], {}
    for representation, matrix in matrices.items():
        for k in (*config.ks, FULL_K):
            if k == FULL_K:
                columns = np.arange(matrix.shape[1])
                selected = None
            else:
                columns = top_k_by_mean_difference(matrix[train], labels[train], k)
                selected = [int(c) for c in columns]
            hits = _fit_correct(matrix[:, columns], labels, train, test, config)
            correct[representation, k] = hits
            low, high = percentile_interval(hits[resamples].mean(axis=1))
            rows.append(
                {
                    "task": str(task),
                    "representation": representation,
                    "k": int(k),
                    "n_features": int(columns.size),
                    "accuracy": float(hits.mean()),
                    "ci_low": low,
                    "ci_high": high,
                    "delta_vs_raw": float("nan"),
                    "delta_ci_low": float("nan"),
                    "delta_ci_high": float("nan"),
                    "selected": selected,
                    "n_train": int(train.size),
                    "n_test": int(test.size),
                    "test_correct": hits.tolist(),
                }
            )
    for row in rows:
        if row["representation"] == "sae":
            difference = correct["sae", row["k"]].astype(float) - correct["raw", row["k"]]
            row["delta_vs_raw"] = float(difference.mean())
            row["delta_ci_low"], row["delta_ci_high"] = percentile_interval(difference[resamples].mean(axis=1))
    return pd.DataFrame(rows, columns=[*TABLE_COLUMNS, "test_correct"])


# --------------------------------------------------------------------------- result


@dataclass
class SparseProbingResult(EvalResult):
    """Several tasks' frames from :func:`sparse_probe_task`, keyed by task name."""

    config: SparseProbingConfig
    tasks: dict[str, pd.DataFrame]

    def __post_init__(self) -> None:
        if not self.tasks:
            raise InputError("SparseProbingResult.tasks: expected at least one task frame")
        for name, frame in self.tasks.items():
            missing = set(TABLE_COLUMNS) - set(frame.columns)
            if missing:
                raise InputError(f"SparseProbingResult.tasks[{name!r}]: missing column(s) {sorted(missing)}")

    @classmethod
    def from_tasks(cls, frames: Iterable[pd.DataFrame], config: SparseProbingConfig) -> SparseProbingResult:
        """Collect frames of :func:`sparse_probe_task`, keyed by their ``task`` column (names must differ)."""
        tasks: dict[str, pd.DataFrame] = {}
        for frame in frames:
            names = frame["task"].unique() if "task" in frame.columns else []
            if len(names) != 1:
                raise InputError(f"SparseProbingResult.from_tasks: expected one task per frame, got {list(names)}")
            if names[0] in tasks:
                raise InputError(f"SparseProbingResult.from_tasks: task {names[0]!r} appears twice")
            tasks[str(names[0])] = frame
        return cls(config, tasks)

    def table(self) -> pd.DataFrame:
        """One long table over tasks (without the per-example ``test_correct`` vectors)."""
        return pd.concat([frame[list(TABLE_COLUMNS)] for frame in self.tasks.values()], ignore_index=True)

    OUTPUT = SparseProbingOutput

    def document(self) -> dict[str, Any]:
        """The JSON content (see :class:`SparseProbingOutput`)."""
        return (
            {
                "config": self.config.to_dict(),
                "tasks": list(self.tasks),
                "rows": self.table().to_dict(orient="records"),
                "headline": headline(self),
            }
        )


def _k1_delta_replicates(result: SparseProbingResult, frame: pd.DataFrame) -> np.ndarray:
    """The task's paired-bootstrap replicates of accuracy(sae, k=1) − accuracy(raw, k=1),
    regenerated from the stored correctness vectors with the task's own resamples."""
    by_representation = frame[frame["k"] == 1].set_index("representation")
    sae = np.asarray(by_representation.loc["sae", "test_correct"], dtype=float)
    raw = np.asarray(by_representation.loc["raw", "test_correct"], dtype=float)
    resamples = _bootstrap_indices(sae.size, result.config)
    return (sae - raw)[resamples].mean(axis=1)


def headline(result: SparseProbingResult) -> dict[str, Any]:
    """Mean over tasks of accuracy(sae, k=1) − accuracy(raw, k=1); the CI is the percentile
    interval of the per-replicate mean of the tasks' paired bootstrap differences (tasks are
    resampled independently). Without k=1 in ``config.ks`` the value and CI are None."""
    claim = (
        "top-1 SAE latents probe better than the top-1 residual dimension (Gao et al. 2024; SAEBench sparse probing)"
    )
    value = low = high = None
    if 1 in result.config.ks:
        deltas, replicates = [], []
        for frame in result.tasks.values():
            k1 = frame[(frame["k"] == 1) & (frame["representation"] == "sae")]
            deltas.append(float(k1["delta_vs_raw"].iloc[0]))
            replicates.append(_k1_delta_replicates(result, frame))
        value = float(np.mean(deltas))
        low, high = percentile_interval(np.mean(replicates, axis=0))
    return to_jsonable(
        {
            "metric": "mean_accuracy_gain_top1_sae_vs_raw",
            "value": value,
            "ci_low": low,
            "ci_high": high,
            "null": 0.0,
            "claim": claim,
        }
    )
