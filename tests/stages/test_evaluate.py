"""Stage evaluate: one error per task example, in the split table's order, with its split, fold and cheap features."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from sae_difficulty.utils.io import read_json

from .conftest import TinyStudy


def test_every_example_gets_an_error_and_keeps_its_split_and_fold(tsfm_study: TinyStudy) -> None:
    table = pd.read_parquet(tsfm_study.evaluate / "evaluation.parquet")
    examples = pd.read_parquet(tsfm_study.tasks / "examples.parquet")
    summary = read_json(tsfm_study.evaluate / "evaluation.json")
    assert list(table["id"]) == list(examples["id"])
    assert list(table["split"]) == list(examples["split"]) and list(table["fold"]) == list(examples["fold"])
    assert np.isfinite(table["error"]).all() and (table["error"] >= 0).all()  # CRPS
    assert summary["n_examples"] == len(table) and summary["mean_error"] == pytest.approx(table["error"].mean())
    assert summary["cheap_features"] == sorted(c for c in table.columns if c.startswith("cheap__"))
    assert "cheap__level" in summary["cheap_features"]
    # the level feature is the context mean of the planted series
    contexts = pd.read_json(tsfm_study.tasks / "records.jsonl", lines=True)["context"]
    np.testing.assert_allclose(table["cheap__level"], [np.mean(c) for c in contexts], rtol=1e-6)

