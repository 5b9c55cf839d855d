"""Stage tasks: ETTh1-style forecast windows in time order, split at the cutoff, checksum-checked."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import node_context

from sae_difficulty.stages import tasks
from sae_difficulty.utils.errors import InputError
from sae_difficulty.utils.io import read_json

from .conftest import TSFM_CONTEXT, TSFM_HORIZON, TSFM_ROWS, TSFM_STRIDE, TinyStudy


def test_windows_copy_the_csv_and_never_straddle_the_train_test_cutoff(tsfm_study: TinyStudy) -> None:
    summary = read_json(tsfm_study.tasks / "tasks.json")
    examples = pd.read_parquet(tsfm_study.tasks / "examples.parquet")
    series = pd.read_csv(tsfm_study.csv)["OT"].to_numpy()
    assert summary["modality"] == "tsfm" and summary["dataset"] == "etth1"
    assert summary["n_windows_total"] == (TSFM_ROWS - TSFM_CONTEXT - TSFM_HORIZON) // TSFM_STRIDE + 1
    dropped = sum(count for key, count in summary.items() if key.startswith("n_dropped_"))
    assert len(examples) == summary["n_examples"] == summary["n_windows_total"] - dropped > 0
    # windows starting in (cutoff - context - horizon, cutoff) straddle it (cutoff and starts are multiples of the stride)
    assert summary["n_dropped_straddling_cutoff"] == (TSFM_CONTEXT + TSFM_HORIZON) // TSFM_STRIDE - 1
    cutoff = summary["cutoff"]
    assert cutoff == int(0.6 * TSFM_ROWS)  # the configured train_fraction of the rows
    assert (np.diff(examples["start"]) > 0).all()  # time order
    train, test = examples[examples["split"] == "train"], examples[examples["split"] == "test"]
    assert (train["start"] + TSFM_CONTEXT + TSFM_HORIZON <= cutoff).all() and (test["start"] >= cutoff).all()
    assert (examples["forecast_start"] == examples["start"] + TSFM_CONTEXT).all()
    assert sorted(examples["fold"].unique()) == [0, 1, 2]
    with open(tsfm_study.tasks / "records.jsonl") as handle:
        records = [json.loads(line) for line in handle]
    assert [r["id"] for r in records] == list(examples["id"])
    for record in (records[0], records[-1]):
        start = record["start"]
        np.testing.assert_allclose(record["context"], series[start : start + TSFM_CONTEXT])
        np.testing.assert_allclose(record["target"], series[start + TSFM_CONTEXT : start + TSFM_CONTEXT + TSFM_HORIZON])


def test_a_csv_with_another_checksum_is_refused_in_one_line(tsfm_study: TinyStudy, tmp_path: Path) -> None:
    params = dict(tsfm_study.params["tasks"])
    good = hashlib.sha256(tsfm_study.csv.read_bytes()).hexdigest()
    tasks.build(node_context("tasks", {**params, "sha256": good}, tmp_path / "ok0000000000"))
    with pytest.raises(InputError, match=r"series\.csv: sha256 .* != expected 000000000000"):
        tasks.build(node_context("tasks", {**params, "sha256": "0" * 64}, tmp_path / "bad000000000"))
    with pytest.raises(InputError, match="does not exist"):
        tasks.build(node_context("tasks", {**params, "path": str(tmp_path / "missing.csv")}, tmp_path / "gone00000000"))
