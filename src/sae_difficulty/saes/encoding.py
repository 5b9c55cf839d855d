"""What a loaded SAE is used for: its architecture name, decoder directions, encoding rows and pooled codes, reconstruction with ablations.

Every helper takes sae-lens' ``SAE`` or the sae-lens-free :class:`~sae_difficulty.saes.checkpoint.SaeCheckpoint`
(same ``encode``/``decode``/``cfg``), so a stage that only encodes arrays need not import sae-lens.
"""


from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np
import torch
import zarr
from tqdm.auto import tqdm

from sae_difficulty.saes.cache import (
    ActivationCache,
    iter_row_blocks,
    open_activation_cache,
)
from sae_difficulty.saes.checkpoint import PROJECT_ARCHITECTURE, SaeCheckpoint, SparseAutoencoder
from sae_difficulty.utils.errors import InputError

DEFAULT_BATCH_SIZE = 4096


# --------------------------------------------------------------------------- loading


def sae_architecture(sae: SparseAutoencoder) -> str:
    """The project architecture name of an SAE: the architecture it was *trained* as.

    BatchTopK SAEs are saved by sae-lens as JumpReLU; the training architecture recorded
    in ``cfg.metadata.training_architecture`` tells them apart.
    """
    trained_as = sae.cfg.metadata.training_architecture
    name = trained_as if trained_as else sae.cfg.architecture()
    return PROJECT_ARCHITECTURE.get(name, name)


def decoder_directions(sae: SparseAutoencoder) -> np.ndarray:
    """The decoder dictionary as float64 rows ``[d_sae, d_in]`` (what PWMCC compares)."""
    if isinstance(sae, SaeCheckpoint):
        return sae.decoder_directions()
    return sae.W_dec.detach().to("cpu", torch.float64).numpy().copy()


# --------------------------------------------------------------------------- encoding


def reconstruct(sae: SparseAutoencoder, x: torch.Tensor, ablate_features: Iterable[int] | None = None) -> torch.Tensor:
    """``decode(encode(x))`` on ``[..., d_in]``, with the listed features' codes zeroed before decoding.

    Uses the SAE's own ``encode``/``decode`` (decoder-bias shift and any activation
    normalization included), so with ``ablate_features=None`` it equals ``sae(x)`` unless
    the SAE was set to add its error term.
    """
    codes = sae.encode(x)
    if ablate_features is not None:
        indices = sorted({int(i) for i in ablate_features})
        if indices and not (0 <= indices[0] and indices[-1] < sae.cfg.d_sae):
            raise InputError(
                f"ablate_features: indices must lie in [0, {sae.cfg.d_sae}), got {indices[0]}..{indices[-1]}"
            )
        if indices:
            codes = codes.clone()
            codes[..., indices] = 0
    return sae.decode(codes)


@torch.no_grad()
def encode_rows(sae: SparseAutoencoder, rows: Any, batch_size: int = DEFAULT_BATCH_SIZE, progress: bool = False) -> np.ndarray:
    """Codes ``[rows, d_sae]`` (float32) of a numpy/zarr array, encoded ``batch_size`` rows at a time."""
    check_width(sae, rows, "rows")
    out = np.empty((int(rows.shape[0]), sae.cfg.d_sae), dtype=np.float32)
    start = 0
    for block in tqdm(
        iter_row_blocks(rows, batch_size),
        total=-(-int(rows.shape[0]) // batch_size),
        desc="encode",
        disable=not progress,
    ):
        codes = sae.encode(torch.from_numpy(block).to(sae.device)).float().cpu().numpy()
        out[start : start + block.shape[0]] = codes
        start += block.shape[0]
    return out


def check_width(sae: SparseAutoencoder, rows: Any, name: str) -> None:
    shape = tuple(rows.shape)
    if len(shape) != 2 or shape[1] != sae.cfg.d_in:
        raise InputError(f"{name}: expected [rows, {sae.cfg.d_in}] activations for this SAE, got shape {shape}")


@torch.no_grad()
def encode_pooled(
    sae: SparseAutoencoder,
    activation_zarr_group: str | os.PathLike | zarr.Group | ActivationCache,
    batch_size: int = DEFAULT_BATCH_SIZE,
    progress: bool = False,
) -> dict[str, np.ndarray]:
    """Pooled SAE codes per example, pooled the way the raw block is.

    ``last``: codes of each example's boundary activation. ``mean`` and ``max``: the mean
    and the elementwise maximum over the example's tokens *of the codes* (not the codes of
    the pooled activation), streamed over ``tokens`` ``batch_size`` rows at a time;
    batches may cut through examples, so an example's maximum is the maximum of its
    pieces' maxima. (``concat`` is not stored: readers stack mean, max and last.)
    """
    cache = (
        activation_zarr_group
        if isinstance(activation_zarr_group, ActivationCache)
        else open_activation_cache(activation_zarr_group)
    )
    check_width(sae, cache.tokens, f"{cache.path}: 'tokens'")
    offsets = cache.offsets
    n_examples, n_tokens = cache.n_examples, int(offsets[-1])
    sums = np.zeros((n_examples, sae.cfg.d_sae), dtype=np.float64)
    maxima = np.full((n_examples, sae.cfg.d_sae), -np.inf, dtype=np.float64)
    start = 0
    for block in tqdm(
        iter_row_blocks(cache.tokens, batch_size),
        total=-(-n_tokens // batch_size),
        desc="encode tokens",
        disable=not progress,
    ):
        stop = start + block.shape[0]
        codes = sae.encode(torch.from_numpy(block).to(sae.device)).double().cpu().numpy()
        first = int(np.searchsorted(offsets, start, side="right") - 1)
        last = int(np.searchsorted(offsets, stop - 1, side="right") - 1)
        # where each example of this block starts inside it (offsets are strictly increasing)
        starts_in_block = np.maximum(offsets[first : last + 1] - start, 0)
        sums[first : last + 1] += np.add.reduceat(codes, starts_in_block, axis=0)
        np.maximum(maxima[first : last + 1], np.maximum.reduceat(codes, starts_in_block, axis=0),
                   out=maxima[first : last + 1])  # fmt: skip
        start = stop
    means = (sums / np.diff(offsets)[:, None]).astype(np.float32)
    return {"last": encode_rows(sae, cache.last, batch_size, progress), "mean": means, "max": maxima.astype(np.float32)}


def read_codes(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """Read a codes group written by :func:`write_codes` into memory (``{name: float32 array}``)."""
    if not Path(path).exists():
        raise InputError(f"SAE codes {path} do not exist")
    group = zarr.open_group(str(path), mode="r")
    return {name: np.asarray(array[...]) for name, array in sorted(group.arrays())}
