"""Small checks and loops every Chronos stage shares: context length, width, batches with progress."""

from __future__ import annotations

from tqdm.auto import tqdm

from sae_difficulty.utils.errors import InputError


def check_context(pipeline, context_length: int) -> None:
    """One-line error when windows are longer than the backbone's context."""
    limit = pipeline.model.config.context_length
    if context_length > limit:
        raise InputError(f"window context_length {context_length} exceeds the backbone's context_length {limit}; use shorter windows")


def d_model(pipeline) -> int:
    """Width of the Chronos encoder's residual stream."""
    return int(pipeline.model.model.config.d_model)


def batch_progress(n: int, batch_size: int, desc: str):
    """Batch start indices over ``n`` windows, with a tqdm bar in the rule's log."""
    if int(batch_size) < 1:
        raise InputError(f"batch_size: expected >= 1, got {batch_size}")
    starts = range(0, n, int(batch_size))
    return tqdm(starts, desc=desc, unit="batch", total=len(starts), mininterval=5.0)
