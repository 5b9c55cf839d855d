"""ETTh1-style forecast windows as task records: build them from a CSV, read them back.

``build_tasks`` - ``path`` (default resources/ETTh1.csv for etth1; required for etth2),
``target`` OT, ``time_column`` date, ``context_length`` 128, ``horizon`` 24, ``stride`` 24,
``pretrain_fraction`` 0.4 (windows start at or after it), ``train_fraction`` 0.7,
``cv_folds`` 5 (``sha256`` and ``enabled`` are the stage's).

Task files (``build_tasks``): ``records.jsonl``, one window per line in time order:
``id`` ("<dataset>-<start>"), ``start`` (row index of the first context step),
``forecast_start`` (row of the first forecast step), ``context_start_time``,
``forecast_start_time``, ``end_time`` (timestamps as written in the CSV), ``context``
(C floats) and ``target`` (H floats); ``examples.parquet``: ``id``, ``split``, ``fold``,
``start``, ``forecast_start``, ``cutoff`` (first test row), ``forecast_start_time``,
``window`` (``start // stride``: the position on the window grid, which the probe's purge
gap and block resampling count in); ``tasks.json`` adds ``overlap_windows`` =
⌈(context + horizon) / stride⌉ and ``pretrain_cutoff``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from sae_difficulty.modalities.tsfm import data
from sae_difficulty.utils.errors import InputError
from sae_difficulty.utils.io import write_parquet

RECORDS = "records.jsonl"
EXAMPLES = "examples.parquet"


def read_windows(tasks_dir: str | Path) -> tuple[pd.DataFrame, np.ndarray, np.ndarray]:
    """The split table and the window values of a tasks dir: (examples, contexts [N, C], targets [N, H]),
    rows in the split table's order."""
    tasks_dir = Path(tasks_dir)
    for name in (RECORDS, EXAMPLES):
        if not (tasks_dir / name).is_file():
            raise InputError(f"{tasks_dir}: missing {name}; expected a tasks dir written by build_tasks")
    examples = pd.read_parquet(tasks_dir / EXAMPLES)
    records = {}
    with open(tasks_dir / RECORDS) as handle:
        for line_number, line in enumerate(handle, start=1):
            try:
                record = json.loads(line)
                records[record["id"]] = (record["context"], record["target"])
            except (json.JSONDecodeError, KeyError, TypeError):
                raise InputError(f"{tasks_dir / RECORDS}: line {line_number} is not a window record (id, context, target)") from None
    missing = [i for i in examples["id"] if i not in records]
    if missing:
        raise InputError(f"{tasks_dir}: split table id {missing[0]!r} has no record in {RECORDS}")
    try:
        contexts = np.array([records[i][0] for i in examples["id"]], dtype=np.float64)
        targets = np.array([records[i][1] for i in examples["id"]], dtype=np.float64)
    except ValueError:
        raise InputError(f"{tasks_dir / RECORDS}: windows differ in length; expected one context_length and horizon") from None
    if contexts.ndim != 2 or targets.ndim != 2 or not (np.isfinite(contexts).all() and np.isfinite(targets).all()):
        raise InputError(f"{tasks_dir / RECORDS}: expected finite numeric context/target lists")
    return examples, contexts, targets


def build_tasks(dataset: str, params: dict[str, Any], out_dir: Path, seed: int) -> dict[str, Any]:
    """Rolling windows of the target, split by time, blocked folds; writes records.jsonl and
    examples.parquet. ``seed`` is unused: nothing here is random."""
    if dataset not in data.DATASET_FILES:
        raise InputError(f"dataset {dataset!r}: expected one of {sorted(data.DATASET_FILES)}")
    context_length = int(params.get("context_length", 128))
    horizon = int(params.get("horizon", 24))
    stride = int(params.get("stride", 24))
    cv_folds = int(params.get("cv_folds", 5))
    series = data.load_series(
        data.resolve_data_path(params.get("path"), dataset),
        params.get("target", data.DEFAULT_TARGET),
        params.get("time_column", data.DEFAULT_TIME_COLUMN),
    )
    starts = data.window_starts(len(series), context_length, horizon, stride)
    train_fraction = params.get("train_fraction", data.DEFAULT_TRAIN_FRACTION)
    cutoff = data.time_cutoff(len(series), train_fraction)
    first_evaluated = data.pretrain_cutoff(
        len(series), params.get("pretrain_fraction", data.DEFAULT_PRETRAIN_FRACTION), train_fraction)  # fmt: skip
    split = data.split_windows(starts, context_length, horizon, cutoff)
    constant = data.constant_context(series.values, starts, context_length)
    pretraining = starts < first_evaluated
    keep = (split != "") & ~constant & ~pretraining
    summary = {
        "source": series.source,
        "target": series.target,
        "n_rows": len(series),
        "cutoff": cutoff,
        "cutoff_time": str(series.timestamps[cutoff]),
        "context_length": context_length,
        "horizon": horizon,
        "stride": stride,
        "n_windows_total": int(len(starts)),
        "n_dropped_straddling_cutoff": int(np.sum(split == "")),
        "n_dropped_constant_context": int(np.sum((split != "") & constant & ~pretraining)),
        "pretrain_cutoff": first_evaluated,
        "n_dropped_pretraining": int(np.sum(pretraining)),
        "overlap_windows": int(-(-(context_length + horizon) // stride)),
    }
    starts, split = starts[keep], split[keep]
    for name in ("train", "test"):
        if not np.any(split == name):
            raise InputError(
                f"{series.source}: no {name} windows with train_fraction={params.get('train_fraction', data.DEFAULT_TRAIN_FRACTION)}, "
                f"context_length={context_length}, horizon={horizon}; both splits need windows"
            )
    folds = data.blocked_folds(len(starts), cv_folds)
    ids = [f"{dataset}-{int(s):06d}" for s in starts]
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    stamps = series.timestamps
    with open(out_dir / RECORDS, "w") as handle:
        for window_id, start in zip(ids, starts):
            s = int(start)
            record = {
                "id": window_id,
                "start": s,
                "forecast_start": s + context_length,
                "context_start_time": str(stamps[s]),
                "forecast_start_time": str(stamps[s + context_length]),
                "end_time": str(stamps[s + context_length + horizon - 1]),
                "context": series.values[s : s + context_length].tolist(),
                "target": series.values[s + context_length : s + context_length + horizon].tolist(),
            }
            handle.write(json.dumps(record, sort_keys=True) + "\n")
    examples = pd.DataFrame(
        {
            "id": ids,
            "split": split.astype(str),
            "fold": folds,
            "start": starts.astype(np.int64),
            "forecast_start": (starts + context_length).astype(np.int64),
            "cutoff": np.full(len(starts), cutoff, dtype=np.int64),
            "forecast_start_time": [str(stamps[int(s) + context_length]) for s in starts],
            "window": (starts // stride).astype(np.int64),
        }
    )
    write_parquet(out_dir / EXAMPLES, examples)
    summary.update(
        {
            "n_examples": len(ids),
            "n_train": int(np.sum(split == "train")),
            "n_test": int(np.sum(split == "test")),
            "cv_folds": cv_folds,
            "fold_sizes": np.bincount(folds, minlength=cv_folds).tolist(),
        }
    )
    return summary
