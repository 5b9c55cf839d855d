"""The five-rung probe ladder: does a feature block predict difficulty beyond the others?

Rungs (``RUNGS``): P1 cheap, P2 cheap+raw, P3 cheap+SAE, P4 raw only, P5 SAE only.
Each rung is a scikit-learn Pipeline (drop constant columns → StandardScaler →
LogisticRegression) whose C is chosen by a seeded, stratified inner cross-validation
(``GridSearchCV``, ROC AUC). Two evaluation designs:

* ``train_mask``: fit on the training examples, score the others;
* ``folds``: out-of-fold scores for every example, C chosen inside each training fold
  (fold ids per example, e.g. blocked in time for the TSFM, or any scikit-learn splitter
  such as :class:`~sae_difficulty.core.folds.PurgedBlockedSplits`).

Options for leakage-free labels and time-ordered examples (all off by default, which is
the original protocol): ``relabel`` labels every split with a threshold taken on that
split's training examples only (:class:`~sae_difficulty.core.labels.TrainQuantileLabeler`);
``refit_index`` restricts the coefficient fit (whose top SAE features the causal stage
ablates) to training examples; ``inner_splits`` replaces the shuffled inner CV by e.g.
:func:`~sae_difficulty.core.folds.blocked_inner_splits` or
:func:`~sae_difficulty.core.folds.forward_inner_splits`; ``block_length`` makes every CI
and p-value resample blocks of consecutive examples (:mod:`sae_difficulty.core.resampling`).

The headline is Δ(P3 − P2) (SAE features beyond raw activations, both with the cheap
baseline) with CI and p-values, then Δ(P3 − P1) and Δ(P5 − P4).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np
import pandas as pd
from sklearn.feature_selection import VarianceThreshold
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GridSearchCV, StratifiedKFold
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler

from sae_difficulty.core.resampling import auroc_with_ci, compare_scores_dependent
from sae_difficulty.core.stats import (
    bootstrap_auroc,
    check_binary_labels,
)
from sae_difficulty.utils.errors import InputError

log = logging.getLogger(__name__)

RUNGS: dict[str, tuple[str, ...]] = {
    "P1": ("cheap",),
    "P2": ("cheap", "raw"),
    "P3": ("cheap", "sae"),
    "P4": ("raw",),
    "P5": ("sae",),
}
# (a, b) pairs whose ΔAUROC = a − b is reported; P3−P2 is the headline.
COMPARISONS: tuple[tuple[str, str], ...] = (("P3", "P2"), ("P3", "P1"), ("P5", "P4"))


@dataclass
class LadderResult:
    """Scores, AUROCs and comparisons of the ladder's rungs on the evaluated examples."""

    scores: dict[str, np.ndarray]
    eval_index: np.ndarray
    y_eval: np.ndarray
    table: pd.DataFrame
    deltas: dict[str, dict[str, Any]]
    coefficients: dict[str, np.ndarray]
    feature_slices: dict[str, dict[str, list[int]]]
    chosen_C: dict[str, float]
    C_by_fold: dict[str, list[float]]
    settings: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready full detail (per-example scores included)."""
        return {
            "settings": self.settings,
            "table": self.table.to_dict(orient="records"),
            "deltas": self.deltas,
            "chosen_C": self.chosen_C,
            "C_by_fold": self.C_by_fold,
            "feature_slices": self.feature_slices,
            "coefficients": {rung: coef.tolist() for rung, coef in self.coefficients.items()},
            "eval_index": self.eval_index.tolist(),
            "y_eval": self.y_eval.tolist(),
            "scores": {rung: score.tolist() for rung, score in self.scores.items()},
        }

    def to_frame(self) -> pd.DataFrame:
        """Flat table: one row per rung (kind "rung") and per comparison (kind "delta")."""
        rung_rows = [
            {
                "kind": "rung",
                "name": row["rung"],
                "blocks": row["blocks"],
                "n_features": row["n_features"],
                "C": row["C"],
                "value": row["auroc"],
                "ci_low": row["auroc_ci_low"],
                "ci_high": row["auroc_ci_high"],
            }
            for row in self.table.to_dict(orient="records")
        ]
        delta_rows = [
            {
                "kind": "delta",
                "name": name,
                "value": comparison["delta"],
                "ci_low": comparison["ci_low"],
                "ci_high": comparison["ci_high"],
                "p_label_permutation": comparison["p_label_permutation"],
                "p_paired_permutation": comparison["p_paired_permutation"],
                "p_delong": comparison["p_delong"],
            }
            for name, comparison in self.deltas.items()
        ]
        columns = [
            "kind", "name", "blocks", "n_features", "C", "value", "ci_low", "ci_high",
            "p_label_permutation", "p_paired_permutation", "p_delong",
        ]  # fmt: skip
        return pd.DataFrame(rung_rows + delta_rows, columns=columns)

    def scores_frame(self) -> pd.DataFrame:
        """Per evaluated example: its index, label and the score of every rung."""
        frame = pd.DataFrame({"index": self.eval_index, "y": self.y_eval})
        for rung, score in self.scores.items():
            frame[rung] = score
        return frame


# --------------------------------------------------------------------------- validation
def _validate_blocks(blocks: dict[str, Any], n: int, needed: set[str]) -> dict[str, np.ndarray]:
    checked: dict[str, np.ndarray] = {}
    for name in sorted(needed):
        if name not in blocks:
            raise InputError(f"blocks: rung needs block {name!r}, but only {sorted(blocks)} were given")
        array = np.asarray(blocks[name], dtype=float)
        if array.ndim == 1:
            array = array[:, None]
        if array.ndim != 2:
            raise InputError(
                f"blocks[{name!r}]: expected a 2-D array [n_examples, n_features], got shape {array.shape}"
            )
        if array.shape[0] != n:
            raise InputError(f"blocks[{name!r}]: {array.shape[0]} rows but y has {n} labels")
        if array.shape[1] == 0:
            raise InputError(f"blocks[{name!r}]: the block is empty (0 feature columns) but a rung uses it")
        bad_rows = ~np.isfinite(array).all(axis=1)
        if bad_rows.any():
            row = int(np.flatnonzero(bad_rows)[0])
            raise InputError(f"blocks[{name!r}]: NaN/inf in row {row} (first bad row)")
        checked[name] = array
    return checked


def _resolve_splits(
    n: int, labels: np.ndarray, train_mask: Any, folds: Any
) -> tuple[str, list[tuple[np.ndarray, np.ndarray]]]:
    """The (train indices, test indices) pairs of the chosen design."""
    if (train_mask is None) == (folds is None):
        raise InputError("run_ladder: give exactly one of train_mask (fit on train, score test) or folds (out-of-fold)")
    if train_mask is not None:
        mask = np.asarray(train_mask)
        if mask.dtype != bool or mask.shape != (n,):
            raise InputError(
                f"train_mask: expected a boolean array of length {n}, got dtype {mask.dtype} shape {mask.shape}"
            )
        return "train_test", [(np.flatnonzero(mask), np.flatnonzero(~mask))]
    if hasattr(folds, "split"):
        splits = [(np.asarray(tr), np.asarray(te)) for tr, te in folds.split(np.zeros((n, 1)), labels)]
    else:
        fold_ids = np.asarray(folds)
        if fold_ids.shape != (n,) or not np.issubdtype(fold_ids.dtype, np.integer):
            raise InputError(
                f"folds: expected integer fold ids of length {n} or a CV splitter, "
                f"got dtype {fold_ids.dtype} shape {fold_ids.shape}"
            )
        if np.unique(fold_ids).size < 2:
            raise InputError("folds: need at least 2 distinct fold ids for out-of-fold scores")
        splits = [(np.flatnonzero(fold_ids != k), np.flatnonzero(fold_ids == k)) for k in np.unique(fold_ids)]
    tested = np.concatenate([te for _, te in splits])
    if np.unique(tested).size != tested.size:
        raise InputError("folds: an example is in more than one test fold; out-of-fold scores need disjoint test folds")
    return "out_of_fold", splits


def _check_split_classes(labels: np.ndarray, train: np.ndarray, name: str, inner_folds: int) -> None:
    counts = np.bincount(labels[train].astype(int), minlength=2)
    if counts.min() == 0:
        raise InputError(
            f"{name}: the training examples are all of class {int(counts.argmax())}; a probe needs both classes"
        )
    if counts.min() < inner_folds:
        raise InputError(
            f"{name}: only {counts.min()} training examples of class {int(counts.argmin())}, "
            f"fewer than inner_folds={inner_folds}"
        )


# --------------------------------------------------------------------------- fitting
PENALTIES = ("l2", "l1")


def _logistic(penalty: str, max_iter: int, seed: int) -> LogisticRegression:
    """L2 (lbfgs) or L1 (liblinear, sparse coefficients: the original study's probe) logistic regression."""
    if penalty == "l1":
        return LogisticRegression(l1_ratio=1.0, solver="liblinear", max_iter=max_iter, random_state=seed)
    return LogisticRegression(max_iter=max_iter, random_state=seed)


def _make_search(
    Cs: tuple[float, ...], inner_folds: int, seed: int, max_iter: int, cv: Any = None, penalty: str = "l2"
) -> GridSearchCV:
    pipeline = Pipeline(
        [
            ("drop_constant", VarianceThreshold(0.0)),
            ("scale", StandardScaler()),
            ("logistic", _logistic(penalty, max_iter, seed)),
        ]
    )
    return GridSearchCV(
        pipeline,
        {"logistic__C": list(Cs)},
        scoring="roc_auc",
        cv=StratifiedKFold(n_splits=inner_folds, shuffle=True, random_state=seed) if cv is None else cv,
        error_score="raise",
    )


def _fit(
    features: np.ndarray, labels: np.ndarray, train: np.ndarray, rung: str, where: str, search: GridSearchCV
) -> GridSearchCV:
    if np.all(features[train].std(axis=0) == 0):
        raise InputError(f"rung {rung}: every feature column is constant on the {where} training examples")
    return search.fit(features[train], labels[train])


def _standardized_coefficients(fitted: GridSearchCV, n_features: int) -> np.ndarray:
    """Coefficients on the standardized features, zero for the dropped constant columns."""
    pipeline = fitted.best_estimator_
    kept = pipeline.named_steps["drop_constant"].get_support()
    coef = np.zeros(n_features)
    coef[kept] = pipeline.named_steps["logistic"].coef_[0]
    return coef


def run_ladder(
    blocks: dict[str, Any],
    y: Any,
    *,
    train_mask: Any = None,
    folds: Any = None,
    seed: int = 0,
    Cs: tuple[float, ...] = (0.01, 0.1, 1.0, 10.0),
    inner_folds: int = 3,
    n_boot: int = 2000,
    n_perm: int = 2000,
    max_iter: int = 1000,
    rungs: tuple[str, ...] | None = None,
    relabel: Callable[[np.ndarray], np.ndarray] | None = None,
    refit_index: Any = None,
    inner_splits: Callable[[np.ndarray, np.ndarray], list[tuple[np.ndarray, np.ndarray]]] | None = None,
    inner_cv_name: str = "given splits",
    block_length: int | None = None,
    penalty: str = "l2",
) -> LadderResult:
    """Fit and score the ladder's rungs on ``blocks`` (name → [n, d] array) for labels ``y``.

    Exactly one of ``train_mask`` (bool [n]: fit on True, score False) or ``folds``
    (int fold id per example, or a scikit-learn splitter: out-of-fold scores) is given.
    ``rungs`` restricts the ladder (default: all of ``RUNGS``); comparisons are reported
    for the pairs of ``COMPARISONS`` whose rungs were both run. Coefficients come from a
    model fit on all training examples (all examples under ``folds``, or ``refit_index``).

    ``relabel(train_index)`` returns the labels of all examples with a threshold from
    those training examples; when given, each split is fitted and scored with its own
    labels, and ``y`` only fixes the number of examples.
    ``inner_splits(train_index, train_labels)`` returns the inner CV's (train, test)
    pairs relative to ``train_index``; ``inner_cv_name`` names that splitter in the
    settings' ``inner_cv`` (which time-ordered inner CV ran). ``block_length`` (examples
    in time order): block bootstrap and block permutations instead of i.i.d. ones.
    ``penalty``: "l2" (default) or "l1" (sparse probes, the original study's).
    """
    labels = check_binary_labels(y, "y")
    n = labels.size
    rung_names = tuple(RUNGS) if rungs is None else tuple(rungs)
    unknown = [r for r in rung_names if r not in RUNGS]
    if unknown or not rung_names:
        raise InputError(f"rungs: expected a non-empty subset of {list(RUNGS)}, got {list(rung_names)}")
    if not Cs or any(float(c) <= 0 for c in Cs):
        raise InputError(f"Cs: expected positive regularization strengths, got {Cs!r}")
    if int(inner_folds) < 2:
        raise InputError(f"inner_folds: expected an integer >= 2, got {inner_folds!r}")
    if penalty not in PENALTIES:
        raise InputError(f"penalty: expected one of {list(PENALTIES)}, got {penalty!r}")
    checked = _validate_blocks(blocks, n, {b for r in rung_names for b in RUNGS[r]})
    design, splits = _resolve_splits(n, labels, train_mask, folds)
    if design == "train_test":
        all_train = splits[0][0]
    else:
        all_train = np.arange(n) if refit_index is None else np.sort(np.asarray(refit_index, dtype=np.int64))
    split_labels = [labels if relabel is None else check_binary_labels(relabel(train), "relabel") for train, _ in splits]
    if design == "train_test":
        refit_labels = split_labels[0]
    else:
        refit_labels = labels if relabel is None else check_binary_labels(relabel(all_train), "relabel")
    for k, (train, _) in enumerate(splits):
        _check_split_classes(
            split_labels[k], train, "train_mask" if design == "train_test" else f"folds (training part of fold {k})", inner_folds
        )
    _check_split_classes(refit_labels, all_train, "y", inner_folds)
    assigned = labels.copy()
    for (_, test), split_y in zip(splits, split_labels):
        assigned[test] = split_y[test]
    eval_index = np.sort(np.concatenate([te for _, te in splits]))
    y_eval = assigned[eval_index].astype(int)
    check_binary_labels(y_eval, "y (evaluated examples)")

    def search_for(train: np.ndarray, train_y: np.ndarray) -> GridSearchCV:
        cv = None if inner_splits is None else inner_splits(train, train_y[train])
        return _make_search(Cs, inner_folds, seed, max_iter, cv, penalty)

    scores: dict[str, np.ndarray] = {}
    coefficients: dict[str, np.ndarray] = {}
    feature_slices: dict[str, dict[str, list[int]]] = {}
    chosen_C: dict[str, float] = {}
    C_by_fold: dict[str, list[float]] = {}
    rows = []
    for rung in rung_names:
        features = np.hstack([checked[b] for b in RUNGS[rung]])
        bounds = np.cumsum([0] + [checked[b].shape[1] for b in RUNGS[rung]])
        feature_slices[rung] = {b: [int(bounds[i]), int(bounds[i + 1])] for i, b in enumerate(RUNGS[rung])}
        oof = np.full(n, np.nan)
        C_by_fold[rung] = []
        for k, (train, test) in enumerate(splits):
            log.info(
                "ladder %s: fold %d/%d (%d train, %d features)", rung, k + 1, len(splits), train.size, features.shape[1]
            )
            fitted = _fit(features, split_labels[k], train, rung, f"fold {k}", search_for(train, split_labels[k]))
            oof[test] = fitted.predict_proba(features[test])[:, 1]
            C_by_fold[rung].append(float(fitted.best_params_["logistic__C"]))
        if design == "train_test":
            full_fit = fitted
        else:
            log.info("ladder %s: refit on %d examples for coefficients", rung, all_train.size)
            full_fit = _fit(features, refit_labels, all_train, rung, "all", search_for(all_train, refit_labels))
        chosen_C[rung] = float(full_fit.best_params_["logistic__C"])
        coefficients[rung] = _standardized_coefficients(full_fit, features.shape[1])
        scores[rung] = oof[eval_index]
        if block_length is None:
            area, low, high = bootstrap_auroc(y_eval, scores[rung], n_boot=n_boot, seed=seed)
        else:
            area, low, high = auroc_with_ci(y_eval, scores[rung], n_boot, seed, block_length)
        rows.append(
            {
                "rung": rung,
                "blocks": "+".join(RUNGS[rung]),
                "n_features": int(features.shape[1]),
                "auroc": area,
                "auroc_ci_low": low,
                "auroc_ci_high": high,
                "C": chosen_C[rung],
            }
        )

    deltas = {
        f"{a}-{b}": compare_scores_dependent(
            y_eval, scores[a], scores[b], n_boot=n_boot, n_perm=n_perm, seed=seed, block_length=block_length
        )
        for a, b in COMPARISONS
        if a in scores and b in scores
    }
    settings = {
        "design": design,
        "n_examples": n,
        "n_evaluated": int(eval_index.size),
        "n_splits": len(splits),
        "rungs": list(rung_names),
        "block_widths": {b: int(a.shape[1]) for b, a in checked.items()},
        "seed": int(seed),
        "Cs": [float(c) for c in Cs],
        "inner_folds": int(inner_folds),
        "n_boot": int(n_boot),
        "n_perm": int(n_perm),
        "max_iter": int(max_iter),
        "penalty": penalty,
        "labels": "per split (training threshold)" if relabel is not None else "given",
        "n_refit": int(all_train.size),
        "inner_cv": inner_cv_name if inner_splits is not None else "stratified shuffled",
        "resampling": "iid" if block_length is None else "block",
        "block_length": 1 if block_length is None else int(block_length),
    }
    return LadderResult(
        scores=scores,
        eval_index=eval_index,
        y_eval=y_eval,
        table=pd.DataFrame(rows),
        deltas=deltas,
        coefficients=coefficients,
        feature_slices=feature_slices,
        chosen_C=chosen_C,
        C_by_fold=C_by_fold,
        settings=settings,
    )
