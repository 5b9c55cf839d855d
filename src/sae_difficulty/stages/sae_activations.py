"""Stage `sae_activations`: token-level activations (train + held-out) for SAE training.

Sources (``<modality>.sae_activations.source``): ``corpus`` (no ``source`` param: the
demo's held-apart text / pretraining mix) and ``hub_text`` run the backbone over text;
``task_train`` / ``task_train_allpos`` cut the training-split rows out of the parent
extract node's cache (no model is loaded; a test example never enters).
"""

from __future__ import annotations

from sae_difficulty.modalities import load_backbone
from sae_difficulty.pipeline.artifacts import ACTIVATIONS, EXAMPLES, read_table
from sae_difficulty.pipeline.consistency import TASK_SOURCES
from sae_difficulty.pipeline.runner import NodeContext
from sae_difficulty.saes.task_cache import write_task_training_cache
from sae_difficulty.utils.io import write_json


def build(ctx: NodeContext) -> None:
    params = dict(ctx.params)
    params.pop("modality")
    layer = params.pop("layer")
    seed = params.pop("seed")
    if params.get("source") in TASK_SOURCES:
        extract_dir = ctx.parent("extract")
        split = read_table(extract_dir / EXAMPLES, "split table")["split"].to_numpy()
        summary = write_task_training_cache(extract_dir / ACTIVATIONS, split, ctx.out / ACTIVATIONS,
                                            params["positions"], params["heldout_fraction"], seed)  # fmt: skip
        write_json(ctx.out / "sae_activations.json",
                   {"layer": layer, "source": params["source"], "dataset": params["dataset"], **summary})  # fmt: skip
        return
    modality, model = load_backbone(ctx.parent("backbone"))
    summary = modality.training_activations(model, layer, ctx.out / ACTIVATIONS, params, seed)
    write_json(ctx.out / "sae_activations.json", {"layer": layer, **(summary or {})})
