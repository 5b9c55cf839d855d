"""Stage `backbone`: train the demo model in Hugging Face format, or record a hub name."""

from __future__ import annotations

from sae_difficulty.modalities import get_modality
from sae_difficulty.pipeline.artifacts import BACKBONE_SOURCE, MODEL_DIR
from sae_difficulty.pipeline.runner import NodeContext
from sae_difficulty.utils.io import write_json


def build(ctx: NodeContext) -> None:
    params = dict(ctx.params)
    modality_name = params.pop("modality")
    params.pop("size")
    seed = params.pop("seed")
    if params.get("hub"):
        write_json(ctx.out / BACKBONE_SOURCE, {"modality": modality_name, "hub": params["hub"]})
        return
    modality = get_modality(modality_name)
    summary = modality.train_backbone(params, ctx.out / MODEL_DIR, seed)
    write_json(ctx.out / "training.json", summary)
    write_json(ctx.out / BACKBONE_SOURCE, {"modality": modality_name, "hub": None})
