"""The modular-addition backbone: it groks at p = 23, saves and reloads, and its activations are right."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import zarr

from sae_difficulty.modalities.modular import model as modular
from sae_difficulty.pipeline.artifacts import ACTIVATIONS, MODEL_DIR
from sae_difficulty.utils.io import read_json

from .conftest import SMALL_BACKBONE, SMALL_P


def test_small_p_groks_to_full_test_accuracy(grokked_backbone: Path) -> None:
    summary = read_json(grokked_backbone / "training.json")
    curves = pd.read_parquet(grokked_backbone / "training_curves.parquet")
    assert summary["final"]["test_accuracy"] == 1.0 and summary["final"]["train_accuracy"] == 1.0
    assert summary["stopped_early"] and summary["steps"] < SMALL_BACKBONE["train_steps"]
    # it memorized before it generalized, and stayed generalized for the stop window
    assert summary["memorized_step"] < summary["grokked_step"] <= summary["steps"] - SMALL_BACKBONE["stop_window"]
    assert curves["test_accuracy"].iloc[0] < 0.5
    assert list(curves.columns) == ["step", "train_loss", "test_loss", "train_accuracy", "test_accuracy"]
    assert (grokked_backbone / "training_curves.png").read_bytes()[:4] == b"\x89PNG"


def test_saved_model_reloads_and_answers_every_pair(grokked_backbone: Path) -> None:
    model, spec = modular.load_model(grokked_backbone / MODEL_DIR)
    assert spec.to_dict() == SMALL_BACKBONE and model.cfg.normalization_type is None
    pairs = modular.all_pairs(SMALL_P)
    with torch.no_grad():
        logits = model(modular.input_tokens(pairs, SMALL_P))[:, -1, :]
    assert (logits.argmax(-1).numpy() == pairs.sum(1) % SMALL_P).all()


def test_training_is_deterministic_and_a_short_budget_fails_clearly() -> None:
    short = {**SMALL_BACKBONE, "train_steps": 30, "eval_every": 10, "min_test_accuracy": 0.0}
    first = modular.train_grokking(modular.GrokkingSpec.from_dict(short), progress=False)
    second = modular.train_grokking(modular.GrokkingSpec.from_dict(short), progress=False)
    for name, tensor in first.model.state_dict().items():
        assert torch.equal(tensor, second.model.state_dict()[name]), name
    pd.testing.assert_frame_equal(first.curves, second.curves)
    with pytest.raises(modular.GrokkingError, match=r"below min_test_accuracy 1\.0.*modular\.train_steps"):
        modular.train_grokking(modular.GrokkingSpec.from_dict({**short, "min_test_accuracy": 1.0}), progress=False)


def test_spec_rejects_bad_values_in_one_line() -> None:
    with pytest.raises(modular.InputError, match="odd prime"):
        modular.GrokkingSpec(p=21)
    with pytest.raises(modular.InputError, match="divisor of d_model"):
        modular.GrokkingSpec(d_model=30, n_heads=4)
    with pytest.raises(modular.InputError, match="unknown key"):
        modular.GrokkingSpec.from_dict({"p": 23, "layers": 2})


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
