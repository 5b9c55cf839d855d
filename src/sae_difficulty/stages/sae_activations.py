"""Stage `sae_activations`: token-level activations (train + held-out) for SAE training."""

from __future__ import annotations

from sae_difficulty.modalities import load_backbone
from sae_difficulty.pipeline.artifacts import ACTIVATIONS
from sae_difficulty.pipeline.runner import NodeContext
from sae_difficulty.utils.io import write_json


def build(ctx: NodeContext) -> None:
    params = dict(ctx.params)
    params.pop("modality")
    layer = params.pop("layer")
    seed = params.pop("seed")
    modality, model = load_backbone(ctx.parent("backbone"))
    summary = modality.training_activations(model, layer, ctx.out / ACTIVATIONS, params, seed)
    write_json(ctx.out / "sae_activations.json", {"layer": layer, **(summary or {})})
