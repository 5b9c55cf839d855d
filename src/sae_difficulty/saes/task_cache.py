"""SAE training caches cut from the task examples' own activations (the dataset-matched SAE).

The extract node already holds every example's token-level activations (``tokens`` /
``offsets``) and its boundary row (``last``), in the order of its split table. A
task-split training cache takes the rows of **training-split examples only**: a test
example never contributes a row, so the SAE whose codes the probe is scored with has
never seen a test prompt. A seeded share of the training examples (whole examples, so no
example straddles the two) becomes ``heldout``, the rows the SAE's quality and the causal
control's firing frequencies are measured on.

``positions``: ``last`` takes one row per example (the LM's boundary token: the
original's dataset-matched SAE); ``all`` takes every position (every prompt token: the
LM's all-position SAE; every context step: the TSFM's train-split tokens). Rows are
streamed chunk by chunk from the extract cache into whole-chunk writes, so memory stays
at one chunk of each array plus the per-row role vector.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import zarr

from sae_difficulty.saes.cache import (
    DEFAULT_CHUNK_ROWS,
    ChunkAlignedWriter,
    iter_row_blocks,
    open_activation_cache,
    write_training_cache,
)
from sae_difficulty.utils.errors import InputError

POSITIONS = ("last", "all")
TRAIN, HELDOUT = 1, 2  # roles of an example (0: not in the cache - a test example)


def example_roles(split: Sequence[str], heldout_fraction: float, seed: int) -> np.ndarray:
    """Per example: ``TRAIN``, ``HELDOUT`` (a seeded share of the training examples) or 0 (not training).

    At least one training example lands on each side, so both arrays of the cache are non-empty.
    """
    split = np.asarray(split, dtype=object)
    if not 0 < heldout_fraction < 1:
        raise InputError(f"sae_activations.heldout_fraction: expected a number in (0, 1), got {heldout_fraction}")
    train = np.flatnonzero(split == "train")
    if len(train) < 2:
        raise InputError(f"task-split SAE cache: {len(train)} training-split examples; need at least 2 (one to train on, one held out)")
    n_heldout = min(len(train) - 1, max(1, round(heldout_fraction * len(train))))
    roles = np.zeros(len(split), dtype=np.int8)
    roles[train] = TRAIN
    roles[np.random.default_rng([seed, 0x5AE]).choice(train, size=n_heldout, replace=False)] = HELDOUT
    return roles


def write_task_training_cache(
    extract_cache: str | os.PathLike,
    split: Sequence[str],
    out: str | os.PathLike,
    positions: str,
    heldout_fraction: float,
    seed: int,
    chunk_rows: int = DEFAULT_CHUNK_ROWS,
) -> dict[str, Any]:
    """Write an SAE training cache (``train``/``heldout``) from the training-split rows of an
    extract cache; ``split`` is the split of each of its examples, in cache order."""
    if positions not in POSITIONS:
        raise InputError(f"task-split SAE cache: positions {positions!r}; expected one of {list(POSITIONS)}")
    cache = open_activation_cache(extract_cache)
    if len(split) != cache.n_examples:
        raise InputError(f"{extract_cache}: {cache.n_examples} examples but the split table has {len(split)} rows; expected the same extract node")
    roles = example_roles(split, heldout_fraction, seed)
    out = Path(out)
    if positions == "last":
        last = np.asarray(cache.last[...], dtype=np.float32)
        write_training_cache(out, last[roles == TRAIN], last[roles == HELDOUT], chunk_rows)
        counts = {"train": int(np.sum(roles == TRAIN)), "heldout": int(np.sum(roles == HELDOUT))}
    else:
        counts = _copy_token_rows(cache, np.repeat(roles, np.diff(cache.offsets)), out, chunk_rows)
    zarr.open_group(str(out), mode="r+").attrs.update({"source": "task training split", "positions": positions})
    return {
        "positions": positions,
        "n_train_examples": int(np.sum(roles == TRAIN)),
        "n_heldout_examples": int(np.sum(roles == HELDOUT)),
        "n_examples_excluded": int(np.sum(roles == 0)),
        "train_tokens": counts["train"],
        "heldout_tokens": counts["heldout"],
        "d": cache.d,
    }


def _copy_token_rows(cache: Any, row_roles: np.ndarray, out: Path, chunk_rows: int) -> dict[str, int]:
    """Stream the ``tokens`` rows of each role into ``train`` / ``heldout``, in cache order."""
    counts = {"train": int(np.sum(row_roles == TRAIN)), "heldout": int(np.sum(row_roles == HELDOUT))}
    group = zarr.open_group(str(out), mode="w", zarr_format=3)
    writers = {
        role: ChunkAlignedWriter(group.create_array(name, shape=(counts[name], cache.d), chunks=(min(chunk_rows, counts[name]), cache.d),
                                                    dtype="float32", compressors=None))
        for role, name in ((TRAIN, "train"), (HELDOUT, "heldout"))
    }  # fmt: skip
    block_rows = int(cache.tokens.chunks[0])
    for index, block in enumerate(iter_row_blocks(cache.tokens, block_rows)):
        block_roles = row_roles[index * block_rows : index * block_rows + len(block)]
        if not np.all(np.isfinite(block[block_roles > 0])):
            raise InputError(f"{cache.path}: 'tokens' rows {index * block_rows}..{index * block_rows + len(block) - 1} contain non-finite values")
        for role, writer in writers.items():
            writer.append(block[block_roles == role])
    for writer in writers.values():
        writer.close()
    return counts
