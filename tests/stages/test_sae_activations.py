"""Stage sae_activations: a training cache with the configured number of train and held-out rows."""

from __future__ import annotations

import numpy as np

from sae_difficulty.pipeline.artifacts import ACTIVATIONS
from sae_difficulty.saes.cache import open_training_cache
from sae_difficulty.utils.io import read_json

from .conftest import TinyStudy


def test_cache_has_the_configured_rows_of_the_backbone_width(tsfm_study: TinyStudy) -> None:
    params = tsfm_study.params["sae_activations"]
    cache = open_training_cache(tsfm_study.activations / ACTIVATIONS)
    d = tsfm_study.params["backbone"]["d_model"]
    assert cache.train.shape == (params["tokens"], d) and cache.heldout.shape == (params["heldout_tokens"], d)
    train, heldout = np.asarray(cache.train[...]), np.asarray(cache.heldout[...])
    assert np.isfinite(train).all() and train.std(axis=0).min() > 0
    # held-out rows come from held-out series: no row is shared with training
    assert not (heldout[:, None, :] == train[None, :256, :]).all(axis=2).any()
    summary = read_json(tsfm_study.activations / "sae_activations.json")
    assert summary["layer"] == 1 and summary["train_tokens"] == params["tokens"]
