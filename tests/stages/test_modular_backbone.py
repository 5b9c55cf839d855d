"""Stage modular_backbone: the p = 23 model groks, its curves and figure are written, and it reloads."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import torch
from conftest import SMALL_BACKBONE, SMALL_P

from sae_difficulty.modalities.modular import model as modular
from sae_difficulty.pipeline.artifacts import MODEL_DIR
from sae_difficulty.utils.io import read_json


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
