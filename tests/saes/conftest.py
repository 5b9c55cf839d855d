"""Planted-dictionary data and SAEs trained on it, shared by the SAE-stage tests.

The data are sparse non-negative combinations of 64 known unit directions in d=32,
generated with sae-lens' own synthetic helpers (``FeatureDictionary`` +
``ActivationGenerator``), written to a zarr training cache. Every test that trains
reads the cache through the real streaming path.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import torch
from sae_lens.synthetic import ActivationGenerator, FeatureDictionary

from sae_difficulty.saes.cache import write_training_cache
from sae_difficulty.saes.training import SAETrainingSpec, train_sae

D_IN = 32
N_TRUE = 64
FIRING_PROBABILITY = 0.05  # ~3.2 active directions per token
EXPANSION = 4
K = 4
TRAIN_ROWS = 30_000
HELDOUT_ROWS = 4096
CHUNK_ROWS = 2048
BATCH_SIZE = 512
TOPK_STEPS = 250  # 128k tokens: enough to recover every planted direction at this size


@dataclass(frozen=True)
class Planted:
    directions: np.ndarray  # [N_TRUE, D_IN] unit rows
    train: np.ndarray
    heldout: np.ndarray
    cache: Path


def topk_spec(seed: int, steps: int = TOPK_STEPS) -> SAETrainingSpec:
    return SAETrainingSpec(
        architecture="topk",
        expansion=EXPANSION,
        k=K,
        lr=5e-3,
        training_tokens=steps * BATCH_SIZE,
        batch_size=BATCH_SIZE,
        seed=seed,
        dead_feature_window=50,
    )


@pytest.fixture(scope="session", autouse=True)
def _one_torch_thread() -> None:
    torch.set_num_threads(1)


@pytest.fixture(scope="session")
def planted(tmp_path_factory: pytest.TempPathFactory) -> Planted:
    torch.manual_seed(1234)
    dictionary = FeatureDictionary(N_TRUE, D_IN, initializer=None, seed=1234)
    generator = ActivationGenerator(
        N_TRUE, firing_probabilities=FIRING_PROBABILITY, std_firing_magnitudes=0.3, mean_firing_magnitudes=1.0
    )
    with torch.no_grad():
        train = dictionary(generator.sample(TRAIN_ROWS)).numpy()
        heldout = dictionary(generator.sample(HELDOUT_ROWS)).numpy()
    cache = write_training_cache(
        tmp_path_factory.mktemp("cache") / "training.zarr", train, heldout, chunk_rows=CHUNK_ROWS
    )
    return Planted(dictionary.feature_vectors.detach().numpy().astype(np.float64), train, heldout, cache)


@pytest.fixture(scope="session")
def trained_topk(planted: Planted, tmp_path_factory: pytest.TempPathFactory) -> dict[int, Path]:
    """Two TopK SAEs (seeds 0 and 1) trained with ``train_sae`` on the planted cache."""
    root = tmp_path_factory.mktemp("topk")
    paths = {}
    for seed in (0, 1):
        paths[seed] = root / f"seed{seed}"
        train_sae(planted.cache, topk_spec(seed), paths[seed], progress=False)
    return paths
