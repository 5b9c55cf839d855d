"""Stage `extract`: pooled (last, mean) and token-level activations of the tasks at one layer."""

from __future__ import annotations

import shutil

from sae_difficulty.modalities import load_backbone
from sae_difficulty.pipeline.artifacts import ACTIVATIONS, EXAMPLES
from sae_difficulty.pipeline.runner import NodeContext
from sae_difficulty.utils.io import write_json


def build(ctx: NodeContext) -> None:
    params = dict(ctx.params)
    layer = params.pop("layer")
    tasks_dir = ctx.parent("tasks")
    modality, model = load_backbone(ctx.parent("backbone"))
    summary = modality.extract(model, tasks_dir, layer, ctx.out / ACTIVATIONS, params)
    # The example ids in cache order travel with the cache.
    shutil.copyfile(tasks_dir / EXAMPLES, ctx.out / EXAMPLES)
    write_json(ctx.out / "extract.json", {"layer": layer, **(summary or {})})
