"""TSFM data side: CSV validation, time split without leakage, blocked folds, synthetic
series, cheap features, CRPS and MASE (no model needed)."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest
from scipy.stats import norm

from sae_difficulty.modalities.tsfm.adapter import TimeSeriesModality
from sae_difficulty.modalities.tsfm.data import (
    PROJECT_ROOT,
    blocked_folds,
    kernel_synth,
    load_series,
    sample_windows,
    training_pool,
)
from sae_difficulty.modalities.tsfm.features import context_features
from sae_difficulty.modalities.tsfm.patching import crps_per_window, seasonal_naive_mase
from sae_difficulty.modalities.tsfm.tasks import read_windows
from sae_difficulty.utils.errors import InputError

ETTH1_SHA256 = "f18de3ad269cef59bb07b5438d79bb3042d3be49bdeecf01c1cd6d29695ee066"
WINDOWS = {"context_length": 48, "horizon": 12, "stride": 12, "train_fraction": 0.6, "cv_folds": 4}


def write_csv(path, values, target="OT"):
    dates = pd.date_range("2020-01-01", periods=len(values), freq="h").strftime("%Y-%m-%d %H:%M:%S")
    frame = pd.DataFrame({"date": dates, "HUFL": np.arange(len(values)), target: values})
    frame.to_csv(path, index=False)
    return path


def seasonal_series(n, seed=0):
    rng = np.random.default_rng(seed)
    t = np.arange(n)
    return 10 + 3 * np.sin(2 * np.pi * t / 24) + 0.01 * t + rng.normal(0, 0.3, n)


def test_shipped_etth1_is_the_verbatim_copy():
    import hashlib

    path = PROJECT_ROOT / "resources" / "ETTh1.csv"
    assert hashlib.sha256(path.read_bytes()).hexdigest() == ETTH1_SHA256
    assert "CC BY-ND 4.0" in (PROJECT_ROOT / "resources" / "README.md").read_text()


def test_windows_never_leak_test_time_steps(tmp_path):
    n = 600
    values = seasonal_series(n)
    cutoff = int(math.floor(WINDOWS["train_fraction"] * n))
    values[cutoff:] += 1000.0  # planted: any test time step in training data would show up as > 500
    csv = write_csv(tmp_path / "series.csv", values)
    summary = TimeSeriesModality().build_tasks("etth1", {"path": str(csv), **WINDOWS}, tmp_path / "tasks", seed=0)
    examples, contexts, targets = read_windows(tmp_path / "tasks")
    span = WINDOWS["context_length"] + WINDOWS["horizon"]
    train = examples["split"] == "train"
    assert summary["cutoff"] == cutoff and summary["n_dropped_straddling_cutoff"] > 0
    assert (examples.loc[train, "start"] + span <= cutoff).all()
    assert (examples.loc[~train, "start"] >= cutoff).all()
    assert np.all(contexts[train.to_numpy()] < 500) and np.all(targets[train.to_numpy()] < 500)
    assert np.all(contexts[~train.to_numpy()] > 500)
    # the records hold the CSV values of each window
    first = json.loads((tmp_path / "tasks" / "records.jsonl").read_text().splitlines()[0])
    np.testing.assert_allclose(first["context"], values[first["start"] : first["start"] + WINDOWS["context_length"]])
    # the backbone / SAE training pool takes ETTh1 before the (earlier) pretraining cutoff only
    pool = training_pool(
        {
            "synthetic_series": 4,
            "synthetic_length": 128,
            "heldout_fraction": 0.2,
            "etth1": {"path": str(csv), "pretrain_fraction": 0.5},
        },
        min_length=span,
    )
    etth1_parts = [s for s, src in zip(pool.train + pool.heldout, pool.train_source + pool.heldout_source) if src == "etth1"]
    assert sum(len(s) for s in etth1_parts) == 300 < cutoff
    assert all(np.all(s < 500) for s in etth1_parts)
    drawn = sample_windows(pool.train, pool.train_source, 200, span, 48, np.random.default_rng(0), etth1_probability=1.0)
    assert np.all(drawn < 500)


def test_no_evaluated_window_overlaps_a_pretraining_step(tmp_path):
    """Pins item 6 of issue 17: the demo backbone and SAE pretrain on ETTh1 before a cutoff, and the tasks
    used to score windows from step 0, which the backbone had seen. Now every evaluated window (train or
    test split) starts at or after the pretraining cutoff, and the pool holds no step after it."""
    n, pretrain_fraction = 600, 0.3
    values = seasonal_series(n)
    first_evaluated = int(math.floor(pretrain_fraction * n))
    values[first_evaluated:] += 1000.0  # planted: a pretraining step shows up as < 500, an evaluated one as > 500
    csv = write_csv(tmp_path / "series.csv", values)
    tasks = {"path": str(csv), **WINDOWS, "pretrain_fraction": pretrain_fraction}
    summary = TimeSeriesModality().build_tasks("etth1", tasks, tmp_path / "tasks", seed=0)
    examples, contexts, targets = read_windows(tmp_path / "tasks")
    pool = training_pool({"synthetic_series": 0, "heldout_fraction": 0.2,
                          "etth1": {"path": str(csv), "pretrain_fraction": pretrain_fraction}}, min_length=20)  # fmt: skip
    pool_steps = pool.summary["etth1"]["cutoff"]
    assert summary["pretrain_cutoff"] == pool_steps == first_evaluated and summary["n_dropped_pretraining"] > 0
    assert (examples["start"] >= pool_steps).all() and set(examples["split"]) == {"train", "test"}
    assert np.all(contexts > 500) and np.all(targets > 500)
    assert all(np.all(series < 500) for series in pool.train + pool.heldout)
    assert (examples["window"] == examples["start"] // WINDOWS["stride"]).all()
    assert summary["overlap_windows"] == math.ceil((WINDOWS["context_length"] + WINDOWS["horizon"]) / WINDOWS["stride"])
    with pytest.raises(InputError, match="pretrain_fraction"):
        TimeSeriesModality().build_tasks("etth1", {**tasks, "pretrain_fraction": 0.8}, tmp_path / "bad", seed=0)


def test_blocked_folds_are_contiguous_in_time(tmp_path):
    csv = write_csv(tmp_path / "series.csv", seasonal_series(600))
    TimeSeriesModality().build_tasks("etth1", {"path": str(csv), **WINDOWS}, tmp_path / "tasks", seed=0)
    examples = pd.read_parquet(tmp_path / "tasks" / "examples.parquet")
    assert examples["start"].is_monotonic_increasing
    folds = examples["fold"].to_numpy()
    assert np.all(np.diff(folds) >= 0) and set(folds) == set(range(WINDOWS["cv_folds"]))
    sizes = np.bincount(folds)
    assert sizes.max() - sizes.min() <= 1
    np.testing.assert_array_equal(blocked_folds(10, 3), [0, 0, 0, 0, 1, 1, 1, 2, 2, 2])


@pytest.mark.parametrize(
    ("cell", "message"),
    [("abc", "data row 8 (CSV line 9) has non-numeric value 'abc'"), ("", "data row 8 (CSV line 9) is missing")],
)
def test_bad_target_value_names_the_row(tmp_path, cell, message):
    csv = write_csv(tmp_path / "series.csv", seasonal_series(300))
    frame = pd.read_csv(csv, dtype=str, keep_default_na=False)
    frame.loc[7, "OT"] = cell
    frame.to_csv(csv, index=False)
    with pytest.raises(InputError, match=message.replace("(", r"\(").replace(")", r"\)")) as error:
        load_series(csv)
    assert "\n" not in str(error.value)


def test_guardrails_short_series_missing_column_and_constant_windows(tmp_path):
    modality = TimeSeriesModality()
    short = write_csv(tmp_path / "short.csv", seasonal_series(50))
    with pytest.raises(InputError, match="shorter than context_length \\+ horizon = 60"):
        modality.build_tasks("etth1", {"path": str(short), **WINDOWS}, tmp_path / "t1", seed=0)
    with pytest.raises(InputError, match="column 'LOAD' missing"):
        modality.build_tasks("etth1", {"path": str(short), **WINDOWS, "target": "LOAD"}, tmp_path / "t2", seed=0)
    with pytest.raises(InputError, match="dataset 'weather'"):
        modality.build_tasks("weather", {"path": str(short)}, tmp_path / "t3", seed=0)
    values = seasonal_series(600)
    values[264:336] = 7.0  # a stuck sensor (after the pretraining cutoff, 240): contexts inside it are constant
    csv = write_csv(tmp_path / "flat.csv", values)
    summary = modality.build_tasks("etth1", {"path": str(csv), **WINDOWS}, tmp_path / "t4", seed=0)
    _, contexts, _ = read_windows(tmp_path / "t4")
    assert summary["n_dropped_constant_context"] == 3  # windows starting at 264, 276, 288 read only the flat 264..335
    assert np.all(np.ptp(contexts, axis=1) > 0)


def test_kernel_synth_is_seeded_and_varied():
    first, again, other = kernel_synth(6, 200, seed=3), kernel_synth(6, 200, seed=3), kernel_synth(6, 200, seed=4)
    assert all(np.array_equal(a, b) for a, b in zip(first, again))
    assert not all(np.array_equal(a, b) for a, b in zip(first, other))
    assert all(s.shape == (200,) and np.isfinite(s).all() and np.ptp(s) > 0 for s in first)


def test_cheap_features_find_planted_structure():
    rng = np.random.default_rng(0)
    t = np.arange(192)
    seasonal = np.sin(2 * np.pi * t / 24) + 0.05 * rng.normal(size=t.size)
    walk = np.cumsum(rng.normal(size=t.size))
    trend = 0.5 * t + rng.normal(size=t.size)
    stuck = seasonal.copy()
    stuck[100:130] = stuck[100]
    f_seasonal, f_walk, f_trend, f_stuck = (context_features(x) for x in (seasonal, walk, trend, stuck))
    assert f_seasonal["seasonal_strength"] > 0.9 > f_walk["seasonal_strength"]
    assert f_seasonal["acf_season"] > 0.8 and f_seasonal["spectral_entropy"] < f_walk["spectral_entropy"] + 0.5
    white = context_features(rng.normal(size=t.size))
    assert white["spectral_entropy"] > f_seasonal["spectral_entropy"]
    assert f_trend["trend_slope"] > 0 and f_trend["trend_strength"] > 0.9
    assert f_stuck["max_flat_run"] == 30 and f_seasonal["max_flat_run"] == 1
    assert all(np.isfinite(v) for v in context_features(np.full(100, 3.0)).values())


def test_crps_matches_the_gaussian_closed_form():
    mu, sigma, m = np.array([0.0, 2.0, -1.0]), np.array([1.0, 0.5, 3.0]), 20_000
    quantiles = norm.ppf((np.arange(m) + 0.5) / m)  # a deterministic ensemble from N(mu, sigma^2)
    samples = mu[None, None, :] + sigma[None, None, :] * quantiles[None, :, None]  # [1, m, 3]
    observations = np.array([[0.3, 1.0, 4.0]])
    z = (observations - mu) / sigma
    closed_form = sigma * (z * (2 * norm.cdf(z) - 1) + 2 * norm.pdf(z) - 1 / np.sqrt(np.pi))
    got = crps_per_window(samples, observations)
    np.testing.assert_allclose(got, closed_form.mean(axis=1), rtol=2e-4)
    # the fair (unbiased) estimator is O(m^2): a smaller ensemble, the same target
    small = mu[None, None, :] + sigma[None, None, :] * norm.ppf((np.arange(2000) + 0.5) / 2000)[None, :, None]
    np.testing.assert_allclose(crps_per_window(small, observations, "fair"), closed_form.mean(axis=1), rtol=2e-3)
    # and it is not a tautology: a mis-centred ensemble scores worse than the closed form
    assert crps_per_window(samples + 3.0, observations)[0] > closed_form.mean() + 0.5


def test_mase_is_relative_to_the_seasonal_naive_scale():
    context = seasonal_series(96)[None, :]
    target = seasonal_series(120)[None, 96:]
    scale = np.mean(np.abs(context[0, 24:] - context[0, :-24]))
    assert seasonal_naive_mase(context, target, target) == 0
    np.testing.assert_allclose(seasonal_naive_mase(context, target, target + 2 * scale), [2.0])
