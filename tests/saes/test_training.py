"""Training with sae-lens from a planted-dictionary zarr cache: recovery, stability, death, determinism."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from sae_lens import SAE

from sae_difficulty.core import sae_metrics
from sae_difficulty.saes.cache import open_training_cache, stream_batches
from sae_difficulty.saes.encoding import decoder_directions
from sae_difficulty.core.sae_metrics import stability_report
from sae_difficulty.saes.checkpoint import read_checkpoint
from sae_difficulty.saes.loading import load_sae
from sae_difficulty.saes.quality import evaluate_quality
from sae_difficulty.saes.training import (
    TRAINING_SUMMARY_FILENAME,
    SAETrainingSpec,
    fit_sae,
    save_sae,
    train_sae,
)
from sae_difficulty.utils.errors import InputError

from .conftest import BATCH_SIZE, D_IN, EXPANSION, K, Planted, topk_spec


def test_topk_recovers_the_planted_directions(planted: Planted, trained_topk: dict[int, Path]) -> None:
    sae = load_sae(trained_topk[0])
    assert sae.cfg.d_sae == EXPANSION * D_IN  # width = expansion x d_in read from the cache
    best, _ = sae_metrics.max_cosines(planted.directions, decoder_directions(sae))
    assert np.mean(best > 0.9) >= 0.9
    assert sae_metrics.recovery_fraction(planted.directions, decoder_directions(sae)) >= 0.9


def test_topk_quality_on_heldout(planted: Planted, trained_topk: dict[int, Path]) -> None:
    quality = evaluate_quality(load_sae(trained_topk[0]), open_training_cache(planted.cache).heldout, batch_size=1000)
    metrics = quality.metrics
    assert metrics["n_tokens"] == len(planted.heldout)
    assert metrics["explained_variance"] > 0.8
    assert metrics["fvu"] == pytest.approx(1 - metrics["explained_variance"])
    assert 0 < metrics["mean_l0"] <= K
    assert metrics["mean_l0"] == pytest.approx(quality.feature_frequency.sum())
    assert metrics["dead_fraction"] < 0.2  # the auxiliary loss keeps features alive
    assert metrics["architecture"] == "topk"


def test_pwmcc_between_seeds_beats_random_dictionaries(trained_topk: dict[int, Path]) -> None:
    # The decoders as the sae_stability stage reads them (saes.checkpoint, no sae-lens).
    decoders = {f"seed{s}": read_checkpoint(p).decoder_directions() for s, p in trained_topk.items()}
    report = stability_report(decoders, n_random=5, seed=0)
    pair = report["pairs"][0]
    assert pair["random_expected"] == pytest.approx(pair["random_mean"], abs=0.02)
    assert report["pwmcc_mean"] > 0.75
    assert report["gap_mean"] > 0.25  # ~0.44 random vs ~0.85 between seeds


def test_training_summary_and_stream_bound(planted: Planted, trained_topk: dict[int, Path]) -> None:
    summary = json.loads((trained_topk[0] / TRAINING_SUMMARY_FILENAME).read_text())
    assert summary["n_steps"] == 250 and summary["n_tokens"] == 250 * BATCH_SIZE
    assert set(summary["final_losses"]) == {"overall_loss", "mse_loss", "auxiliary_reconstruction_loss"}
    assert summary["loss_trace"][-1]["mse_loss"] < summary["loss_trace"][0]["mse_loss"]
    assert "wall_time_s" not in summary
    assert SAETrainingSpec.from_dict(summary["spec"]) == topk_spec(0)


def test_same_seed_gives_identical_weights_and_summary(planted: Planted, tmp_path: Path) -> None:
    runs = {}
    for name, seed in (("a", 5), ("b", 5), ("c", 6)):
        result = train_sae(planted.cache, topk_spec(seed, steps=30), tmp_path / name, progress=False)
        assert result["stream"]["max_rows_buffered"] <= result["stream"]["capacity_rows"]
        runs[name] = tmp_path / name
    weights = {name: (path / "sae_weights.safetensors").read_bytes() for name, path in runs.items()}
    assert weights["a"] == weights["b"] and weights["a"] != weights["c"]
    assert (runs["a"] / TRAINING_SUMMARY_FILENAME).read_bytes() == (runs["b"] / TRAINING_SUMMARY_FILENAME).read_bytes()


def test_starved_relu_is_reported_dead(planted: Planted, tmp_path: Path) -> None:
    def dead_fraction(l1: float) -> float:
        spec = SAETrainingSpec(
            architecture="relu",
            expansion=EXPANSION,
            l1_coefficient=l1,
            lr=5e-3,
            training_tokens=200 * BATCH_SIZE,
            batch_size=BATCH_SIZE,
            seed=0,
        )
        train_sae(planted.cache, spec, tmp_path / f"relu{l1}", progress=False)
        sae = load_sae(tmp_path / f"relu{l1}", allowed_architectures={"relu"})
        return evaluate_quality(sae, planted.heldout).metrics["dead_fraction"]

    assert dead_fraction(50.0) > 0.75  # huge L1: almost every feature never fires on held-out tokens
    assert dead_fraction(0.5) < 0.1  # same budget, sane L1: alive


def test_save_then_load_from_disk_gives_identical_codes(planted: Planted, tmp_path: Path) -> None:
    for spec in (
        topk_spec(0, steps=40),
        SAETrainingSpec(
            architecture="relu",
            expansion=2,
            l1_coefficient=0.5,
            lr=5e-3,
            training_tokens=40 * BATCH_SIZE,
            batch_size=BATCH_SIZE,
        ),
    ):
        cache = open_training_cache(planted.cache)
        stream = stream_batches(cache.train, spec.batch_size, seed=spec.seed)
        result = fit_sae(stream, spec, cache.d_in)
        out = save_sae(result.sae, tmp_path / spec.architecture)
        loaded = SAE.load_from_disk(out)
        x = torch.from_numpy(planted.heldout[:2000])
        with torch.no_grad():
            assert torch.equal(result.sae.encode(x), loaded.encode(x))
            assert torch.equal(result.sae.decode(result.sae.encode(x)), loaded(x))


def test_batchtopk_trains_and_loads_as_its_training_architecture(planted: Planted, tmp_path: Path) -> None:
    spec = SAETrainingSpec(
        architecture="batchtopk",
        expansion=EXPANSION,
        k=K,
        lr=5e-3,
        training_tokens=100 * BATCH_SIZE,
        batch_size=BATCH_SIZE,
    )
    train_sae(planted.cache, spec, tmp_path / "btk", progress=False)
    sae = load_sae(tmp_path / "btk", allowed_architectures={"batchtopk"})
    assert sae.cfg.architecture() == "jumprelu"  # sae-lens' inference form of BatchTopK
    assert evaluate_quality(sae, planted.heldout).metrics["explained_variance"] > 0.5


def test_spec_from_dict_validates_keys_and_values() -> None:
    spec = SAETrainingSpec.from_dict({"architecture": "relu", "training_tokens": 2.0e6, "expansion": 4})
    assert spec.training_tokens == 2_000_000 and isinstance(spec.training_tokens, int)
    bad = [
        ({"architecure": "topk"}, "unknown key"),
        ({"architecture": "gated"}, "'architecture'"),
        ({"k": True}, "'k'"),
        ({"lr": -1.0}, "'lr'"),
        ({"expansion": 2.5}, "'expansion'"),
        ({"training_tokens": 100, "batch_size": 4096}, "'training_tokens'"),
        ({"normalize_activations": "layer_norm"}, "'normalize_activations'"),
    ]
    for values, message in bad:
        with pytest.raises(InputError, match=message) as error:
            SAETrainingSpec.from_dict(values)
        assert "\n" not in str(error.value)


def test_k_larger_than_the_width_is_refused(planted: Planted, tmp_path: Path) -> None:
    spec = SAETrainingSpec(
        architecture="topk", expansion=1, k=D_IN + 1, training_tokens=BATCH_SIZE, batch_size=BATCH_SIZE
    )
    with pytest.raises(InputError, match="exceeds the SAE width"):
        train_sae(planted.cache, spec, tmp_path / "x", progress=False)


def test_training_on_a_missing_cache_is_refused(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="does not exist"):
        train_sae(tmp_path / "absent.zarr", topk_spec(0), tmp_path / "out", progress=False)
    assert not (tmp_path / "out").exists()
