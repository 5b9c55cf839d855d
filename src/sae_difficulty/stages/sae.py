"""Stage `sae`: train one sparse autoencoder with sae-lens on a token-level cache.

``rows`` ("first_half" / "second_half", absent for ordinary SAEs) trains on that half of
the cache's training rows only: two SAEs of one recipe on disjoint data, the data-split
reference of the stability report.
"""

from __future__ import annotations

import math

from sae_difficulty.pipeline.artifacts import ACTIVATIONS, SAE_DIR
from sae_difficulty.pipeline.runner import NodeContext
from sae_difficulty.saes.cache import open_training_cache, stream_batches
from sae_difficulty.saes.training import (
    TRAINING_SUMMARY_FILENAME,
    SAETrainingSpec,
    fit_sae,
    save_sae,
    train_sae,
)
from sae_difficulty.utils.errors import InputError
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


HALVES = ("first_half", "second_half")


class RowRange:
    """Rows ``[start, stop)`` of a row-chunked array, readable by ``stream_batches`` (shape, chunks, slicing)."""

    def __init__(self, array, start: int, stop: int):
        self.array, self.start, self.stop = array, int(start), int(stop)
        self.shape = (self.stop - self.start, int(array.shape[1]))
        self.chunks = array.chunks

    def __getitem__(self, rows: slice):
        first, last, _ = rows.indices(self.shape[0])
        return self.array[self.start + first : self.start + last]


def half_rows(n_rows: int, which: str) -> tuple[int, int]:
    """The row range of one half of ``n_rows`` cache rows (the halves are disjoint and cover every row)."""
    if which not in HALVES:
        raise InputError(f"sae rows: expected one of {HALVES}, got {which!r}")
    middle = n_rows // 2
    return (0, middle) if which == "first_half" else (middle, n_rows)


def build(ctx: NodeContext) -> None:
    cache_path = ctx.parent("activations") / ACTIVATIONS
    cache = open_training_cache(cache_path)
    params = {k: v for k, v in ctx.params.items() if v is not None}
    rows = params.pop("rows", None)
    params["max_batches_in_memory"] = buffer_batches(cache.train.chunks[0], params["batch_size"])
    spec = SAETrainingSpec.from_dict(params)
    if rows is None:
        summary = train_sae(cache_path, spec, ctx.out / SAE_DIR, progress=True)
    else:
        start, stop = half_rows(cache.train.shape[0], rows)
        stream = stream_batches(RowRange(cache.train, start, stop), spec.batch_size, seed=spec.seed,
                                max_batches_in_memory=spec.max_batches_in_memory)  # fmt: skip
        result = fit_sae(stream, spec, cache.d_in)
        save_sae(result.sae, ctx.out / SAE_DIR)
        write_json(ctx.out / SAE_DIR / TRAINING_SUMMARY_FILENAME, result.summary)
        summary = {**result.summary, "rows": [start, stop]}
    write_json(ctx.out / "training.json", {k: v for k, v in summary.items() if k != "wall_time_s"})
