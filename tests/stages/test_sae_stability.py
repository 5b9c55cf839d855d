"""Stage sae_stability: PWMCC between seeds against random dictionaries (isotropic, and matched to
the held-out activations' covariance). Two SAEs whose decoders are the same rows in another order
are perfectly stable; independent ones sit on the controls."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from conftest import node_context

from sae_difficulty.pipeline.artifacts import ACTIVATIONS
from sae_difficulty.saes.cache import write_training_cache
from sae_difficulty.stages import sae_stability
from sae_difficulty.utils.io import read_json

from .conftest import save_decoder_sae

D_IN, D_SAE = 16, 32


def _unit_rows(seed: int) -> np.ndarray:
    rows = np.random.default_rng(seed).normal(size=(D_SAE, D_IN))
    return rows / np.linalg.norm(rows, axis=1, keepdims=True)


def _stability(tmp_path: Path, decoders: dict[str, np.ndarray]) -> Path:
    torch.manual_seed(0)
    parents = {role: save_decoder_sae(tmp_path / role, decoder) for role, decoder in decoders.items()}
    rows = np.random.default_rng(7).normal(size=(512, D_IN)).astype(np.float32)
    parents["activations"] = tmp_path / "activations"
    write_training_cache(parents["activations"] / ACTIVATIONS, rows, rows)
    ctx = node_context("sae_stability", {"n_random": 5, "seed": 0}, tmp_path / "st0000000000", parents)
    sae_stability.build(ctx)
    return ctx.out


def test_permuted_copies_are_perfectly_stable(tmp_path: Path) -> None:
    rows = _unit_rows(0)
    node = _stability(tmp_path, {"seed_0": rows, "seed_1": rows[np.random.default_rng(1).permutation(D_SAE)]})
    report = read_json(node / "stability.json")
    assert report["pwmcc_mean"] == pytest.approx(1.0, abs=1e-5)
    assert report["random_mean"] < 0.8 and report["gap_mean"] > 0.2
    assert report["stable_beyond_matched"]
    pairs = pd.read_parquet(node / "stability.parquet")
    assert list(zip(pairs["a"], pairs["b"])) == [("seed_0", "seed_1")]


def test_independent_dictionaries_match_the_random_controls(tmp_path: Path) -> None:
    node = _stability(tmp_path, {"seed_0": _unit_rows(0), "seed_1": _unit_rows(1), "seed_2": _unit_rows(2)})
    report = read_json(node / "stability.json")
    pairs = pd.read_parquet(node / "stability.parquet")
    assert len(pairs) == 3  # every unordered pair of seeds
    assert abs(report["gap_mean"]) < 0.1 and report["pwmcc_mean"] < 0.8
    assert not report["stable_beyond_matched"]
