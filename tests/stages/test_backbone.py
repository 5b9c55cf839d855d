"""Stage backbone: a trained demo model in its node (it learned), or only the hub name for a hub backbone."""

from __future__ import annotations

from pathlib import Path

from conftest import node_context

from sae_difficulty.modalities import load_backbone
from sae_difficulty.pipeline.artifacts import BACKBONE_SOURCE, MODEL_DIR
from sae_difficulty.stages import backbone
from sae_difficulty.utils.io import read_json

from .conftest import LLM_BACKBONE, TinyStudy


def test_trained_backbone_is_saved_reloadable_and_learned(tsfm_study: TinyStudy) -> None:
    assert read_json(tsfm_study.backbone / BACKBONE_SOURCE) == {"modality": "tsfm", "hub": None}
    training = read_json(tsfm_study.backbone / "training.json")
    assert training["train_steps"] == tsfm_study.params["backbone"]["train_steps"]
    assert training["heldout_loss"] < training["heldout_loss_initial"]  # it learned something from the planted series
    modality, model = load_backbone(tsfm_study.backbone)
    assert type(modality).__name__ == "TimeSeriesModality"
    assert model.model.model.config.d_model == training["config"]["d_model"] == tsfm_study.params["backbone"]["d_model"]
    assert sum(p.numel() for p in model.model.parameters()) == training["parameters"]


def test_a_hub_backbone_only_records_its_name(tmp_path: Path) -> None:
    params = {"modality": "tsfm", "size": "large", "seed": 0, "hub": "amazon/chronos-t5-small"}
    ctx = node_context("backbone", params, tmp_path / "hub000000000")
    backbone.build(ctx)
    assert read_json(ctx.out / BACKBONE_SOURCE) == {"modality": "tsfm", "hub": "amazon/chronos-t5-small"}
    assert not (ctx.out / MODEL_DIR).exists() and not (ctx.out / "training.json").exists()


def test_llm_backbone_trains_a_tokenizer_and_a_model_of_the_configured_shape(llm_backbone: Path) -> None:
    assert read_json(llm_backbone / BACKBONE_SOURCE) == {"modality": "llm", "hub": None}
    modality, loaded = load_backbone(llm_backbone)
    assert type(modality).__name__ == "LanguageModality"
    assert loaded.d_model == LLM_BACKBONE["d_model"] and loaded.model.cfg.n_layers == LLM_BACKBONE["n_layers"]
    assert len(loaded.tokenizer) <= LLM_BACKBONE["vocab_size"]
    training = read_json(llm_backbone / "training.json")
    assert training["vocab_size"] == LLM_BACKBONE["vocab_size"]
    assert training["train_tokens"] == LLM_BACKBONE["train_steps"] * LLM_BACKBONE["batch_size"] * LLM_BACKBONE["context_length"]
