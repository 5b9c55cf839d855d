"""Stage `sae`: train one sparse autoencoder with sae-lens on a token-level cache."""

from __future__ import annotations

from sae_difficulty import sae as sae_lib
from sae_difficulty.io import write_json
from sae_difficulty.scripting import NodeContext
from sae_difficulty.stages.common import ACTIVATIONS, SAE_DIR


def build(ctx: NodeContext) -> None:
    params = {k: v for k, v in ctx.params.items() if v is not None}
    spec = sae_lib.SAETrainingSpec.from_dict(params)
    summary = sae_lib.train_sae(ctx.parent("activations") / ACTIVATIONS, spec, ctx.out / SAE_DIR, progress=True)
    write_json(ctx.out / "training.json", summary)
