"""Encoder activations of Chronos: per-window caches for the probes, token caches for SAE training.

``extract`` - ``batch_size`` 32.  ``training_activations`` - ``tokens`` 200000,
``heldout_tokens`` 20000, ``batch_size`` 32, ``context_length`` (default the model's),
plus the pool keys.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from sae_difficulty.modalities.tsfm import data, patching
from sae_difficulty.modalities.tsfm.runtime import (
    batch_progress,
    check_context,
    d_model,
)
from sae_difficulty.modalities.tsfm.tasks import read_windows
from sae_difficulty.saes.cache import ChunkAlignedWriter
from sae_difficulty.utils.errors import InputError

CHUNK_ROWS = 4096


def extract(model: Any, tasks_dir: Path, layer: int, out_zarr: Path, params: dict[str, Any]) -> dict[str, Any]:
    """Encoder block ``layer``'s output at every context position (EOS excluded) of every
    window, streamed to zarr: ``tokens`` [N*C, d], ``last`` (step C-1), ``mean`` and ``max``
    (over the C steps), ``offsets``. ``tokens`` is written in whole chunks
    (:class:`~sae_difficulty.saes.cache.ChunkAlignedWriter`: no chunk is read back and
    rewritten); ``last``, ``mean`` and ``max`` ([N, d], small) are filled in memory and
    written once. Memory: one batch of windows, one chunk, and ``last``/``mean``/``max``."""
    import zarr

    layer = patching.check_layer(model, layer)
    examples, contexts, _ = read_windows(tasks_dir)
    check_context(model, contexts.shape[1])
    n, steps, d = len(contexts), contexts.shape[1], d_model(model)
    group = zarr.open_group(str(out_zarr), mode="w", zarr_format=3)

    def row_array(name: str, rows: int) -> Any:
        return group.create_array(name, shape=(rows, d), chunks=(min(CHUNK_ROWS, rows), d), dtype="float32", compressors=None)

    group.create_array("offsets", shape=(n + 1,), dtype="int64", compressors=None)[...] = np.arange(n + 1, dtype=np.int64) * steps
    last = np.empty((n, d), dtype=np.float32)
    mean = np.empty((n, d), dtype=np.float32)
    maximum = np.empty((n, d), dtype=np.float32)
    batch_size = int(params.get("batch_size", 32))
    with ChunkAlignedWriter(row_array("tokens", n * steps)) as writer:
        for start in batch_progress(n, batch_size, f"extract block {layer}"):
            stop = min(start + batch_size, n)
            states = context_states(model, contexts[start:stop], layer)  # [B, C, d]
            writer.append(states.reshape(-1, d))
            last[start:stop] = states[:, -1]
            mean[start:stop] = states.mean(axis=1, dtype=np.float64)
            maximum[start:stop] = states.max(axis=1)
    row_array("last", n)[...] = last
    row_array("mean", n)[...] = mean
    row_array("max", n)[...] = maximum
    return {
        "n_examples": n,
        "n_tokens": n * steps,
        "positions_per_example": steps,
        "d": d,
        "hook": f"encoder.block.{layer} output",
        "last": "last context step (position C-1; EOS excluded)",
        "mean": "mean over the C context steps",
        "max": "elementwise maximum over the C context steps",
    }


def context_states(model: Any, contexts: np.ndarray, layer: int) -> np.ndarray:
    """Block ``layer``'s output at the context positions, [B, C, d] float32 (no padding: equal lengths)."""
    _, _, _, context_mask, captured = patching.run_encoder(model, contexts, layer=layer, capture=True)
    mask = context_mask.to(captured.device)
    if not bool(mask.all(dim=0)[:-1].all()):
        raise InputError("a context contains missing values; expected complete windows")
    return captured[mask].reshape(len(contexts), -1, captured.shape[-1]).float().cpu().numpy()


def training_activations(model: Any, layer: int, out_zarr: Path, params: dict[str, Any], seed: int) -> dict[str, Any]:
    """Token-level encoder states at ``layer`` from random windows of the training pool
    (synthetic series + ETTh1 before the cutoff): ``train`` from its train part,
    ``heldout`` from its held-out part, float32, 4096-row chunks, written batch by batch."""
    import zarr

    layer = patching.check_layer(model, layer)
    context_length = int(params.get("context_length") or model.model.config.context_length)
    check_context(model, context_length)
    pool = data.training_pool(params, min_length=context_length)
    d = d_model(model)
    batch_size = int(params.get("batch_size", 32))
    group = zarr.open_group(str(out_zarr), mode="w", zarr_format=3)
    sizes = {"train": int(params.get("tokens", 200_000)), "heldout": int(params.get("heldout_tokens", 20_000))}
    for stream, (name, n_rows) in enumerate(sizes.items()):
        if n_rows < 1:
            raise InputError(f"{'tokens' if name == 'train' else 'heldout_tokens'}: expected >= 1, got {n_rows}")
        series, sources = (pool.train, pool.train_source) if name == "train" else (pool.heldout, pool.heldout_source)
        n_windows = -(-n_rows // context_length)
        windows = data.sample_windows(
            series,
            sources,
            n_windows,
            context_length,
            context_length,
            np.random.default_rng([seed, 10 + stream]),
            float(params.get("etth1_probability", 0.5)),
        )
        array = group.create_array(name, shape=(n_rows, d), chunks=(min(CHUNK_ROWS, n_rows), d), dtype="float32", compressors=None)
        written = 0
        for start in batch_progress(n_windows, batch_size, f"SAE activations ({name})"):
            states = context_states(model, windows[start : start + batch_size], layer).reshape(-1, d)
            take = min(len(states), n_rows - written)
            array[written : written + take] = states[:take]
            written += take
    return {
        "train_tokens": sizes["train"],
        "heldout_tokens": sizes["heldout"],
        "d": d,
        "context_length": context_length,
        "pool": pool.summary,
    }
