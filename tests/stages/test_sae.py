"""Stage sae: trains an SAE of the configured shape on a cache, with a shuffle buffer of two chunks."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import node_context

from sae_difficulty.pipeline.artifacts import ACTIVATIONS, SAE_DIR
from sae_difficulty.saes.cache import open_training_cache, write_training_cache
from sae_difficulty.saes.loading import load_sae
from sae_difficulty.saes.quality import evaluate_quality
from sae_difficulty.stages import sae as sae_stage
from sae_difficulty.utils.io import read_json

from .conftest import TinyStudy


def test_buffer_spans_two_cache_chunks() -> None:
    assert sae_stage.buffer_batches(chunk_rows=4096, batch_size=128) == 65  # ceil(2 * 4096 / 128) + 1
    assert sae_stage.buffer_batches(chunk_rows=64, batch_size=256) == sae_stage.MIN_BUFFER_BATCHES


def test_sae_node_holds_the_configured_sae_and_its_training_summary(tsfm_study: TinyStudy) -> None:
    params = tsfm_study.params["sae"]
    sae = load_sae(tsfm_study.sae / SAE_DIR)
    d = tsfm_study.params["backbone"]["d_model"]
    assert (sae.cfg.d_in, sae.cfg.d_sae) == (d, params["expansion"] * d)
    training = read_json(tsfm_study.sae / "training.json")
    assert "wall_time_s" not in training  # the node must be byte-identical across runs
    assert training["n_tokens"] == params["training_tokens"] and training["spec"]["k"] == params["k"]
    chunk_rows = open_training_cache(tsfm_study.activations / ACTIVATIONS).train.chunks[0]
    assert training["spec"]["max_batches_in_memory"] == sae_stage.buffer_batches(chunk_rows, params["batch_size"])
    assert training["final_losses"]["mse_loss"] < training["loss_trace"][0]["mse_loss"] / 4


def test_sae_recovers_a_planted_low_rank_cache(tmp_path: Path) -> None:
    """Rows are sparse non-negative mixtures of 8 orthonormal directions in d = 16: a TopK SAE
    with k = 2 trained by the stage explains nearly all of their held-out variance."""
    rng = np.random.default_rng(0)
    directions = np.linalg.qr(rng.normal(size=(16, 8)))[0].T  # [8, 16], orthonormal rows

    def rows(n: int) -> np.ndarray:
        weights = rng.exponential(1.0, size=(n, 8)) * (rng.random((n, 8)) < 0.2)
        return (weights @ directions).astype(np.float32)

    activations = tmp_path / "acts"
    write_training_cache(activations / ACTIVATIONS, rows(8192), rows(1024), chunk_rows=1024)
    params = {"architecture": "topk", "expansion": 2, "seed": 0, "k": 2, "l1_coefficient": None, "lr": 0.01,
              "training_tokens": 32768, "batch_size": 128}  # fmt: skip
    ctx = node_context("sae", params, tmp_path / "sae000000000", {"activations": activations})
    torch.manual_seed(0)
    sae_stage.build(ctx)
    heldout = np.asarray(rows(1024))
    quality = evaluate_quality(load_sae(ctx.out / SAE_DIR, expected_d_in=16), heldout).metrics
    assert quality["explained_variance"] > 0.8
    assert quality["mean_l0"] == pytest.approx(2.0, abs=0.5)
