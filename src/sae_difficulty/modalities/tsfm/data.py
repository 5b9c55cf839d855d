"""Time-series data for the Chronos adapter: ETTh1 loading and validation, rolling
forecast windows, the time split, blocked folds, and KernelSynth-like synthetic series.

Everything here is numpy/pandas/scikit-learn (no torch), so the tasks stage stays light.

Windows. A window starting at step ``s`` reads the context ``y[s : s+C]`` and forecasts
``y[s+C : s+C+H]``. Two cutoffs split time in three:

* ``pretrain_cutoff = floor(pretrain_fraction * n)``: the backbone's ETTh1 pretraining
  data and the SAE's training windows come from ``y[:pretrain_cutoff]`` only
  (:func:`training_pool`), and every evaluated (probed, scored) window starts at or after
  it, so "difficult" never means "not seen in pretraining";
* ``cutoff = floor(train_fraction * n)``, the first test time step of the probe's holdout
  split: a train window ends at or before it (``s + C + H <= cutoff``), a test window
  starts at or after it (``s >= cutoff``), and a window straddling it is dropped.
"""

from __future__ import annotations

import functools
import math
import operator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from sae_difficulty.utils.errors import InputError

#: Files for the datasets this adapter knows; ``params["path"]`` overrides the location.
DATASET_FILES = {"etth1": "ETTh1.csv", "etth2": "ETTh2.csv"}
PROJECT_ROOT = Path(__file__).resolve().parents[4]
DEFAULT_TARGET = "OT"
DEFAULT_TIME_COLUMN = "date"
DEFAULT_TRAIN_FRACTION = 0.7
#: ETTh1 before this share of the series is pretraining data; evaluated windows start after it.
#: 0.4 keeps a held-out pretraining part (10 %) longer than a paper-profile window (512 + 64 steps).
DEFAULT_PRETRAIN_FRACTION = 0.4


def resolve_data_path(path: str | Path | None, dataset: str = "etth1") -> Path:
    """The CSV of ``dataset``: ``path`` as given (relative to the working directory, then to the
    project root), or ``resources/<file>`` of the project when ``path`` is None."""
    if path is None:
        if dataset not in DATASET_FILES:
            raise InputError(f"dataset {dataset!r}: no default file; set `path` (known: {sorted(DATASET_FILES)})")
        path = Path("resources") / DATASET_FILES[dataset]
    path = Path(path)
    if not path.is_absolute() and not path.exists() and (PROJECT_ROOT / path).exists():
        path = PROJECT_ROOT / path
    if not path.is_file():
        raise InputError(f"data file {path} does not exist; expected a CSV with a `date` column and the target column")
    return path


@dataclass(frozen=True)
class Series:
    """One validated univariate series with its timestamps (as written in the CSV)."""

    values: np.ndarray  # float64 [n]
    timestamps: np.ndarray  # str [n]
    source: str
    target: str

    def __len__(self) -> int:
        return int(self.values.shape[0])


def load_series(path: str | Path, target: str = DEFAULT_TARGET, time_column: str = DEFAULT_TIME_COLUMN) -> Series:
    """Read ``target`` of a CSV and validate it: the columns exist, every value is a finite
    number (the error names the first bad data row, 1-based, and its CSV line)."""
    path = Path(path)
    try:
        frame = pd.read_csv(path, dtype=str, keep_default_na=False)
    except (OSError, pd.errors.ParserError, UnicodeDecodeError) as error:
        raise InputError(f"{path}: unreadable CSV ({type(error).__name__}); expected a comma-separated table with a header") from None
    for column in (time_column, target):
        if column not in frame.columns:
            raise InputError(f"{path}: column {column!r} missing; have {list(frame.columns)}")
    raw = frame[target].str.strip()
    values = pd.to_numeric(raw, errors="coerce").to_numpy(dtype=np.float64)
    bad = ~np.isfinite(values)
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        text = raw.iloc[row]
        what = "is missing" if text == "" or text.lower() in {"nan", "na", "null"} else f"has non-numeric value {text!r}"
        raise InputError(f"{path}: column {target!r} data row {row + 1} (CSV line {row + 2}) {what}; expected a finite number in every row")
    timestamps = frame[time_column].to_numpy(dtype=str)
    return Series(values=values, timestamps=timestamps, source=str(path), target=target)


def window_starts(n: int, context_length: int, horizon: int, stride: int) -> np.ndarray:
    """Start indices of every rolling window of ``context_length + horizon`` steps in ``n`` steps."""
    for name, value in (("context_length", context_length), ("horizon", horizon), ("stride", stride)):
        if int(value) < 1:
            raise InputError(f"{name}: expected a positive integer, got {value}")
    span = context_length + horizon
    if n < span:
        raise InputError(f"series of {n} steps is shorter than context_length + horizon = {span}; use shorter windows")
    return np.arange(0, n - span + 1, stride, dtype=np.int64)


def time_cutoff(n: int, train_fraction: float) -> int:
    """First test time step: ``floor(train_fraction * n)``."""
    if not 0.0 < float(train_fraction) < 1.0:
        raise InputError(f"train_fraction: expected a number in (0, 1), got {train_fraction}")
    return int(math.floor(float(train_fraction) * n))


def pretrain_cutoff(n: int, pretrain_fraction: float, train_fraction: float) -> int:
    """First evaluated time step: ``floor(pretrain_fraction * n)``, before the probe's train/test cutoff."""
    if not 0.0 < float(pretrain_fraction) < float(train_fraction):
        raise InputError(
            f"pretrain_fraction: expected a number in (0, train_fraction={train_fraction}), got {pretrain_fraction}"
        )
    return time_cutoff(n, pretrain_fraction)


def split_windows(starts: np.ndarray, context_length: int, horizon: int, cutoff: int) -> np.ndarray:
    """ "train" for windows ending at or before ``cutoff``, "test" for windows starting at or after
    it, "" for windows straddling it (to be dropped)."""
    ends = starts + context_length + horizon
    split = np.full(starts.shape, "", dtype=object)
    split[ends <= cutoff] = "train"
    split[starts >= cutoff] = "test"
    return split


def blocked_folds(n_windows: int, cv_folds: int) -> np.ndarray:
    """Fold of each window (given in time order): ``cv_folds`` contiguous blocks of near-equal size,
    so an out-of-fold probe is always scored on a stretch of time it was not fitted on."""
    if cv_folds < 2:
        raise InputError(f"cv_folds: expected >= 2, got {cv_folds}")
    if n_windows < cv_folds:
        raise InputError(f"only {n_windows} windows for cv_folds={cv_folds}; use more data, a smaller stride or fewer folds")
    return (np.arange(n_windows, dtype=np.int64) * cv_folds) // n_windows


def constant_context(values: np.ndarray, starts: np.ndarray, context_length: int) -> np.ndarray:
    """True where a window's context is constant (mean scaling and every shape statistic degenerate)."""
    contexts = np.stack([values[s : s + context_length] for s in starts]) if len(starts) else np.empty((0, context_length))
    return np.ptp(contexts, axis=1) == 0 if len(starts) else np.zeros(0, dtype=bool)


# --------------------------------------------------------------------------- synthetic series


def _kernel_bank(length: int) -> list[Any]:
    """KernelSynth's kernel families (Ansari et al. 2024, "Chronos", App. A) with periods in
    hourly steps (day, half day, week) expressed on the unit interval the GP is sampled on."""
    from sklearn.gaussian_process.kernels import (
        RBF,
        ConstantKernel,
        DotProduct,
        ExpSineSquared,
        RationalQuadratic,
        WhiteKernel,
    )

    periods = [24, 12, 168, 84, 6, 48]
    seasonal = [ExpSineSquared(length_scale=1.0, periodicity=p / length) for p in periods]
    trends = [DotProduct(sigma_0=0.0), DotProduct(sigma_0=1.0), DotProduct(sigma_0=10.0)]
    smooth = [RBF(length_scale=s) for s in (0.1, 1.0, 10.0)] + [RationalQuadratic(alpha=a) for a in (0.1, 1.0, 10.0)]
    noise = [WhiteKernel(noise_level=0.1), WhiteKernel(noise_level=1.0)]
    return seasonal + trends + smooth + noise + [ConstantKernel()]


def kernel_synth(n_series: int, length: int, seed: int, max_kernels: int = 5) -> list[np.ndarray]:
    """KernelSynth-like series: draws from a Gaussian-process prior whose kernel is a random
    sum/product of 1..``max_kernels`` kernels (trends, seasonalities, smooth variation, noise).

    The kernels are scikit-learn's, as in the Chronos authors' ``kernel-synth.py``. The prior
    draw is a Cholesky factor times standard normals rather than
    ``GaussianProcessRegressor.sample_y`` (numpy's SVD-based ``multivariate_normal``): the same
    distribution, about 40x faster at 1024 steps (0.85 s per series there). A covariance that is
    not numerically positive definite gets the next jitter level, then a new kernel, as
    KernelSynth redraws on ``LinAlgError``. Deterministic for ``seed``.
    """
    if n_series < 0 or length < 2:
        raise InputError(f"synthetic series: expected n_series >= 0 and length >= 2, got {n_series}, {length}")
    rng = np.random.default_rng(seed)
    bank = _kernel_bank(length)
    grid = np.linspace(0.0, 1.0, length)[:, None]
    series: list[np.ndarray] = []
    while len(series) < n_series:
        chosen = [bank[i] for i in rng.integers(0, len(bank), size=int(rng.integers(1, max_kernels + 1)))]
        ops = [operator.add if rng.random() < 0.5 else operator.mul for _ in chosen[1:]]
        kernel = functools.reduce(lambda acc, pair: pair[0](acc, pair[1]), zip(ops, chosen[1:]), chosen[0])
        normals = rng.standard_normal(length)
        covariance = kernel(grid)
        sample = None
        for jitter in (1e-8, 1e-6, 1e-4):
            try:
                factor = np.linalg.cholesky(covariance + jitter * np.eye(length))
            except np.linalg.LinAlgError:
                continue
            sample = factor @ normals
            break
        if sample is not None and np.all(np.isfinite(sample)) and np.ptp(sample) > 0:
            series.append(sample.astype(np.float64))
    return series


# --------------------------------------------------------------------------- training pool


@dataclass(frozen=True)
class TrainingPool:
    """Series the backbone and the SAE may learn from: never a test time step of the task data."""

    train: list[np.ndarray]
    heldout: list[np.ndarray]
    train_source: list[str]  # "synthetic" / "etth1" per train series
    heldout_source: list[str]
    summary: dict[str, Any]


def pool_params(params: dict[str, Any]) -> dict[str, Any]:
    """The keys of ``params`` that define the training pool, with their defaults (documented in tsfm.py)."""
    etth1 = dict(params.get("etth1") or {})
    return {
        "synthetic_series": int(params.get("synthetic_series", 200)),
        "synthetic_length": int(params.get("synthetic_length", 1024)),
        "synthetic_seed": int(params.get("synthetic_seed", 0)),
        "synthetic_max_kernels": int(params.get("synthetic_max_kernels", 5)),
        "heldout_fraction": float(params.get("heldout_fraction", 0.1)),
        "etth1": {
            "enabled": bool(etth1.get("enabled", True)),
            "path": etth1.get("path"),
            "target": etth1.get("target", DEFAULT_TARGET),
            "pretrain_fraction": float(etth1.get("pretrain_fraction", DEFAULT_PRETRAIN_FRACTION)),
        },
    }


def training_pool(params: dict[str, Any], min_length: int) -> TrainingPool:
    """Synthetic series plus the part of ETTh1 before the pretraining cutoff (``etth1.pretrain_fraction``,
    before every evaluated window), each split into a train and a held-out part (the last
    ``heldout_fraction`` of the synthetic series, the last ``heldout_fraction`` of ETTh1's
    pretraining time range). Series shorter than ``min_length``
    (one window) are refused with a one-line error."""
    spec = pool_params(params)
    if not 0.0 < spec["heldout_fraction"] < 1.0:
        raise InputError(f"heldout_fraction: expected a number in (0, 1), got {spec['heldout_fraction']}")
    train: list[np.ndarray] = []
    heldout: list[np.ndarray] = []
    train_source: list[str] = []
    heldout_source: list[str] = []
    n_synth = spec["synthetic_series"]
    if n_synth > 0:
        if spec["synthetic_length"] < min_length:
            raise InputError(f"synthetic_length={spec['synthetic_length']} is shorter than one window ({min_length} steps); raise it")
        synth = kernel_synth(n_synth, spec["synthetic_length"], spec["synthetic_seed"], spec["synthetic_max_kernels"])
        n_held = max(1, int(round(spec["heldout_fraction"] * n_synth))) if n_synth > 1 else 0
        train += synth[: n_synth - n_held]
        train_source += ["synthetic"] * (n_synth - n_held)
        heldout += synth[n_synth - n_held :]
        heldout_source += ["synthetic"] * n_held
    etth1_summary: dict[str, Any] = {"enabled": spec["etth1"]["enabled"]}
    if spec["etth1"]["enabled"]:
        series = load_series(resolve_data_path(spec["etth1"]["path"], "etth1"), spec["etth1"]["target"])
        cutoff = time_cutoff(len(series), spec["etth1"]["pretrain_fraction"])
        split_at = int(round(cutoff * (1.0 - spec["heldout_fraction"])))
        parts = {"train": series.values[:split_at], "heldout": series.values[split_at:cutoff]}
        for name, part in parts.items():
            if len(part) < min_length:
                raise InputError(
                    f"{series.source}: the ETTh1 {name} part before the cutoff has {len(part)} steps, fewer than one window "
                    f"({min_length}); raise train_fraction or use shorter windows"
                )
        train.append(parts["train"])
        train_source.append("etth1")
        heldout.append(parts["heldout"])
        heldout_source.append("etth1")
        etth1_summary.update(
            {"path": series.source, "target": series.target, "cutoff": cutoff, "train_steps": split_at, "heldout_steps": cutoff - split_at}
        )
    if not train or not heldout:
        raise InputError("training pool is empty: enable ETTh1 or set synthetic_series >= 2")
    summary = {
        "synthetic_series_train": train_source.count("synthetic"),
        "synthetic_series_heldout": heldout_source.count("synthetic"),
        "synthetic_length": spec["synthetic_length"],
        "synthetic_seed": spec["synthetic_seed"],
        "etth1": etth1_summary,
    }
    return TrainingPool(train, heldout, train_source, heldout_source, summary)


def sample_windows(
    series: list[np.ndarray],
    sources: list[str],
    n_windows: int,
    span: int,
    context_length: int,
    rng: np.random.Generator,
    etth1_probability: float = 0.5,
) -> np.ndarray:
    """``n_windows`` random windows of ``span`` steps, [n_windows, span]: a series is picked
    with ETTh1 at probability ``etth1_probability`` (when present) and synthetic series
    uniformly otherwise, then a uniform start; windows with a constant context are redrawn."""
    groups = {name: [s for s, src in zip(series, sources) if src == name and len(s) >= span] for name in set(sources)}
    groups = {name: members for name, members in groups.items() if members}
    if not groups:
        raise InputError(f"no series in the pool is at least one window long ({span} steps)")
    names = sorted(groups)
    if len(names) == 2:
        weights = np.array([etth1_probability if n == "etth1" else 1.0 - etth1_probability for n in names])
    else:
        weights = np.ones(len(names))
    weights = weights / weights.sum()
    out = np.empty((n_windows, span), dtype=np.float64)
    filled = 0
    draws = 0
    while filled < n_windows:
        draws += 1
        if draws > 100 * n_windows + 1000:
            raise InputError(f"the training pool has (almost) only constant {context_length}-step contexts")
        members = groups[names[int(rng.choice(len(names), p=weights))]]
        values = members[int(rng.integers(0, len(members)))]
        start = int(rng.integers(0, len(values) - span + 1))
        window = values[start : start + span]
        if np.ptp(window[:context_length]) > 0:
            out[filled] = window
            filled += 1
    return out
