"""Stage `sae_activations`: token-level activations (train + held-out) for SAE training."""

from __future__ import annotations

from sae_difficulty.io import write_json
from sae_difficulty.scripting import NodeContext
from sae_difficulty.stages.common import ACTIVATIONS, load_backbone


def build(ctx: NodeContext) -> None:
    params = dict(ctx.params)
    params.pop("modality")
    layer = params.pop("layer")
    seed = params.pop("seed")
    modality, model = load_backbone(ctx.parent("backbone"))
    summary = modality.training_activations(model, layer, ctx.out / ACTIVATIONS, params, seed)
    write_json(ctx.out / "sae_activations.json", {"layer": layer, **(summary or {})})
