"""Stage `synthetic_activations`: samples of the synthetic model as an SAE training cache.

``activations.zarr`` holds float32 ``train`` [train_rows, hidden_dim] and ``heldout``
[heldout_rows, hidden_dim] (the ``saes.cache`` contract), independent draws from the
parent ``synthetic_model``, so the project's ``sae`` stage trains on them unchanged.
``synthetic_activations.json`` records the rows, the realised true L0 (active true
features per sample, after hierarchy) and the mean row norm of each array.
"""

from __future__ import annotations

from sae_difficulty.pipeline.artifacts import ACTIVATIONS
from sae_difficulty.pipeline.runner import NodeContext
from sae_difficulty.saes import synthetic
from sae_difficulty.utils.io import write_json

SUMMARY = "synthetic_activations.json"


def build(ctx: NodeContext) -> None:
    params = ctx.params
    model = synthetic.load_model(ctx.parent("model"))
    summary = synthetic.write_synthetic_cache(model, ctx.out / ACTIVATIONS, int(params["train_rows"]),
                                              int(params["heldout_rows"]), int(params["seed"]))  # fmt: skip
    write_json(ctx.out / SUMMARY, {"hidden_dim": model.cfg.hidden_dim, "num_features": model.cfg.num_features, **summary})
