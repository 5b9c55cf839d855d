"""Stage `sae`: train one sparse autoencoder with sae-lens on a token-level cache."""

from __future__ import annotations

import math

from sae_difficulty.pipeline.artifacts import ACTIVATIONS, SAE_DIR
from sae_difficulty.pipeline.runner import NodeContext
from sae_difficulty.saes.cache import open_training_cache
from sae_difficulty.saes.training import SAETrainingSpec, train_sae
from sae_difficulty.utils.io import write_json

MIN_BUFFER_BATCHES = 8
BUFFER_CHUNKS = 2


def buffer_batches(chunk_rows: int, batch_size: int) -> int:
    """Batches held in the shuffle buffer: at least two cache chunks' worth of rows.

    The streaming shuffle mixes rows within the buffer, so it must span more than one
    chunk; the bound depends only on the cache layout and the batch size, so the same
    spec always gives the same data order.
    """
    return max(MIN_BUFFER_BATCHES, math.ceil(BUFFER_CHUNKS * chunk_rows / batch_size) + 1)


def build(ctx: NodeContext) -> None:
    cache_path = ctx.parent("activations") / ACTIVATIONS
    cache = open_training_cache(cache_path)
    params = {k: v for k, v in ctx.params.items() if v is not None}
    params["max_batches_in_memory"] = buffer_batches(cache.train.chunks[0], params["batch_size"])
    spec = SAETrainingSpec.from_dict(params)
    summary = train_sae(cache_path, spec, ctx.out / SAE_DIR, progress=True)
    write_json(ctx.out / "training.json", {k: v for k, v in summary.items() if k != "wall_time_s"})
