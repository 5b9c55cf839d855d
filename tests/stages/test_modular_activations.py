"""Stage modular_activations: resid_post at the "=" position of every pair, train = heldout (all pairs)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import torch
import zarr
from conftest import SMALL_P

from sae_difficulty.modalities.modular import model as modular
from sae_difficulty.pipeline.artifacts import ACTIVATIONS, MODEL_DIR


def test_activation_cache_holds_resid_post_at_the_equals_position(activations_node: Path, grokked_backbone: Path) -> None:
    group = zarr.open_group(str(activations_node / ACTIVATIONS), mode="r")
    train, heldout = np.asarray(group["train"][...]), np.asarray(group["heldout"][...])
    assert train.dtype == np.float32 and train.shape == (SMALL_P**2, 32)
    np.testing.assert_array_equal(train, heldout)
    inputs = pd.read_parquet(activations_node / "inputs.parquet")
    assert (inputs["answer"] == (inputs["a"] + inputs["b"]) % SMALL_P).all()
    assert inputs["split"].value_counts()["train"] == round(0.7 * SMALL_P**2)
    model, _ = modular.load_model(grokked_backbone / MODEL_DIR)
    row = 5 * SMALL_P + 17  # the pair (5, 17)
    _, cache = model.run_with_cache(torch.tensor([[5, 17, SMALL_P]]))
    np.testing.assert_allclose(train[row], cache["blocks.1.hook_resid_post"][0, -1].numpy(), rtol=1e-5, atol=1e-5)
    # reading the cached row out through the unembedding gives the answer: the right position and layer
    assert int(np.argmax(train[row] @ model.W_U.detach().numpy())) == (5 + 17) % SMALL_P
