"""Sparse probing on planted tasks: one SAE latent carries the label, the raw dims only jointly."""

from __future__ import annotations

import json

import numpy as np
import pytest

from sae_difficulty.evals import sparse_probing as sp
from sae_difficulty.utils.errors import InputError
from tests.evals.schema_checks import assert_schema_accepts

N = 600
SAE_WIDTH, RAW_WIDTH = 32, 20
PLANTED_COLUMN = 13
CONFIG = sp.SparseProbingConfig(ks=(1, 2, 5), n_boot=300)


def planted_task(seed: int):
    """y drives SAE column 13 strongly; every raw dim gets a weak shift (d' = 0.3 each)."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, N)
    x_sae = rng.exponential(0.3, size=(N, SAE_WIDTH)) * (rng.random((N, SAE_WIDTH)) < 0.2)
    x_sae[:, PLANTED_COLUMN] = y * rng.uniform(1.0, 2.0, N)
    x_raw = rng.standard_normal((N, RAW_WIDTH)) + 0.15 * (2 * y - 1)[:, None]
    return x_sae, x_raw, y


def null_task(seed: int):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((N, SAE_WIDTH)), rng.standard_normal((N, RAW_WIDTH)), rng.integers(0, 2, N)


@pytest.fixture(scope="module")
def result():
    frames = {}
    for name, (x_sae, x_raw, y) in {"planted": planted_task(0), "null": null_task(1)}.items():
        train, test = sp.train_test_split_indices(N, 0.5, seed=0, stratify=y)
        frames[name] = sp.sparse_probe_task(name, x_sae, x_raw, y, train, test, CONFIG)
    return sp.SparseProbingResult.from_tasks(frames.values(), CONFIG)


def row(frame, representation, k):
    match = frame[(frame["representation"] == representation) & (frame["k"] == k)]
    assert len(match) == 1
    return match.iloc[0]


def test_single_planted_latent_beats_single_raw_dim(result):
    frame = result.tasks["planted"]
    sae1, raw1 = row(frame, "sae", 1), row(frame, "raw", 1)
    assert sae1["selected"] == [PLANTED_COLUMN]
    assert sae1["accuracy"] > 0.97
    assert raw1["accuracy"] < 0.7
    assert sae1["delta_vs_raw"] == pytest.approx(sae1["accuracy"] - raw1["accuracy"])
    assert sae1["delta_ci_low"] > 0.2
    # the raw signal is spread out: the dense raw probe recovers much more than one raw dim
    assert row(frame, "raw", sp.FULL_K)["accuracy"] > raw1["accuracy"] + 0.1
    assert row(frame, "raw", sp.FULL_K)["n_features"] == RAW_WIDTH and row(frame, "raw", sp.FULL_K)["selected"] is None
    assert np.isnan(raw1["delta_vs_raw"])


def test_top_k_selection_picks_the_planted_column_first():
    x_sae, _, y = planted_task(3)
    chosen = sp.top_k_by_mean_difference(x_sae, y, 3)
    assert chosen[0] == PLANTED_COLUMN and chosen.size == 3
    x = np.zeros((4, 3))
    x[:, 1] = [0, 0, 5, 5]
    x[:, 2] = [0, 0, -7, -7]  # absolute difference: a negative shift counts too
    assert sp.top_k_by_mean_difference(x, np.array([0, 0, 1, 1]), 2).tolist() == [2, 1]


def test_null_task_is_at_chance(result):
    frame = result.tasks["null"]
    for representation in sp.REPRESENTATIONS:
        k1 = row(frame, representation, 1)
        assert abs(k1["accuracy"] - 0.5) < 0.1
        assert k1["ci_low"] <= 0.5 <= k1["ci_high"]
    sae1 = row(frame, "sae", 1)
    assert sae1["delta_ci_low"] <= 0.0 <= sae1["delta_ci_high"]


def test_headline_averages_tasks_with_paired_bootstrap(result):
    top = sp.headline(result)
    deltas = [row(frame, "sae", 1)["delta_vs_raw"] for frame in result.tasks.values()]
    assert top["value"] == pytest.approx(np.mean(deltas))
    assert top["null"] == 0.0 and top["ci_low"] < top["value"] < top["ci_high"]
    assert top["ci_low"] > 0  # the planted task's gain survives averaging with the null task


def test_schema_determinism_and_plot(result, tmp_path):
    payload = result.to_dict()
    assert_schema_accepts(sp.SparseProbingOutput, payload)
    table = result.table()
    assert len(table) == 2 * 2 * (len(CONFIG.ks) + 1) and "test_correct" not in table.columns
    x_sae, x_raw, y = planted_task(0)
    train, test = sp.train_test_split_indices(N, 0.5, seed=0, stratify=y)
    again = sp.sparse_probe_task("planted", x_sae, x_raw, y, train, test, CONFIG)
    assert json.dumps(again.to_dict(orient="records"), default=str) == json.dumps(
        result.tasks["planted"].to_dict(orient="records"), default=str
    )
    table.to_parquet(tmp_path / "sparse.parquet")  # list-valued ``selected`` (None for the dense probe) is parquet-safe
    with pytest.raises(InputError, match="appears twice"):
        sp.SparseProbingResult.from_tasks([again, again], CONFIG)
    assert sp.plot_sparse_probing(result, tmp_path / "sparse.png").stat().st_size > 1000
    with pytest.raises(InputError, match="accuracy"):
        sp.SparseProbingOutput.check({**payload, "rows": [{**payload["rows"][0], "accuracy": 1.2}]})


def test_split_helper_is_stratified_and_disjoint():
    y = np.r_[np.zeros(80, int), np.ones(20, int)]
    train, test = sp.train_test_split_indices(100, 0.25, seed=0, stratify=y)
    assert np.intersect1d(train, test).size == 0 and np.union1d(train, test).size == 100
    assert test.size == 25 and y[test].sum() == 5


def test_bad_inputs_raise_one_line_errors():
    x_sae, x_raw, y = planted_task(0)
    train, test = np.arange(300), np.arange(300, N)
    one_class = y.copy()
    one_class[train] = 1
    with pytest.raises(InputError, match=r"y\[train_idx\]"):
        sp.sparse_probe_task("t", x_sae, x_raw, one_class, train, test, CONFIG)
    with pytest.raises(InputError, match="x_raw has 599 rows"):
        sp.sparse_probe_task("t", x_sae, x_raw[:-1], y, train, test, CONFIG)
    with pytest.raises(InputError, match="k=50 exceeds the 32 columns of the sae"):
        sp.sparse_probe_task("t", x_sae, x_raw, y, train, test, sp.SparseProbingConfig(ks=(1, 50)))
    with pytest.raises(InputError, match="overlap"):
        sp.sparse_probe_task("t", x_sae, x_raw, y, train, np.arange(250, N), CONFIG)
    with pytest.raises(InputError, match="ks"):
        sp.SparseProbingConfig(ks=(0,))
    with pytest.raises(InputError, match="C"):
        sp.SparseProbingConfig(C=0)
    with pytest.raises(InputError, match="unknown key"):
        sp.SparseProbingConfig.from_dict({"k": [1]})
    assert sp.SparseProbingConfig.from_dict({"ks": [1, 3], "n_boot": 10.0}).ks == (1, 3)
