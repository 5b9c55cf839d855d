"""Stage `domain_activations`: one domain's (prose or code) residual rows, an SAE training cache."""

from __future__ import annotations

from sae_difficulty.modalities import load_backbone
from sae_difficulty.modalities.llm.domains import write_domain_cache
from sae_difficulty.pipeline.artifacts import ACTIVATIONS
from sae_difficulty.pipeline.runner import NodeContext
from sae_difficulty.utils.io import write_json


def build(ctx: NodeContext) -> None:
    params = ctx.params
    _, model = load_backbone(ctx.parent("backbone"))
    summary = write_domain_cache(model, params["domain"], params["layer"], ctx.out / ACTIVATIONS, params, params["seed"])
    write_json(ctx.out / "domain_activations.json", summary)
