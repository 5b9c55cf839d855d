"""Zarr activation caches for the SAE stage: validated opening, writing, and bounded streaming.

Two on-disk contracts (see ``sae_difficulty.modalities.base``):

* SAE training cache: a zarr v3 group with float32 ``train`` [T, d] and ``heldout``
  [H, d], chunked by rows.
* example-level activation cache (extract node): float32 ``last`` [N, d], ``mean``
  [N, d], ``max`` [N, d] (elementwise over each example's rows), ``tokens`` [T, d] and
  int64 ``offsets`` [N+1].

:class:`ZarrBatchStream` feeds sae-lens' ``SAETrainer`` (which takes any iterator of
``[batch, d_in]`` tensors). It is written here because sae-lens' own ``ActivationsStore``
/ mixing buffer pull activations from a live model or a Hugging Face dataset, not from a
zarr array, and never bound how much of a cache they read. :class:`ChunkAlignedWriter`
is the writing counterpart: extraction fills a cache block by block in whole chunks.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import zarr
from zarr.core.buffer import default_buffer_prototype

from sae_difficulty.utils.errors import InputError

DEFAULT_CHUNK_ROWS = 4096
DEFAULT_MAX_BATCHES_IN_MEMORY = 8


# --------------------------------------------------------------------------- writing


def _create_row_array(group: zarr.Group, name: str, data: np.ndarray, chunk_rows: int) -> zarr.Array:
    """Float arrays uncompressed (activations barely compress, and raw float32 reads fastest)."""
    chunks = (max(1, min(chunk_rows, data.shape[0])),) + tuple(data.shape[1:])
    array = group.create_array(name, shape=data.shape, chunks=chunks, dtype=data.dtype, compressors=None)
    array[...] = data
    return array


def _checked_rows(name: str, values: Any, d: int | None = None) -> np.ndarray:
    rows = np.asarray(values)
    if rows.ndim != 2 or rows.shape[0] == 0:
        raise InputError(f"{name}: expected a non-empty 2-D array [rows, d], got shape {rows.shape}")
    if d is not None and rows.shape[1] != d:
        raise InputError(f"{name}: width {rows.shape[1]} does not match d={d}")
    if not np.all(np.isfinite(rows)):
        raise InputError(f"{name}: contains non-finite values")
    return rows.astype(np.float32, copy=False)


def write_training_cache(
    path: str | os.PathLike, train: np.ndarray, heldout: np.ndarray, chunk_rows: int = DEFAULT_CHUNK_ROWS
) -> Path:
    """Write an SAE training cache (float32 ``train`` and ``heldout``, chunked by ``chunk_rows`` rows)."""
    if chunk_rows < 1:
        raise InputError(f"chunk_rows: expected >= 1, got {chunk_rows}")
    train = _checked_rows("train", train)
    heldout = _checked_rows("heldout", heldout, train.shape[1])
    path = Path(path)
    group = zarr.open_group(str(path), mode="w", zarr_format=3)
    _create_row_array(group, "train", train, chunk_rows)
    _create_row_array(group, "heldout", heldout, chunk_rows)
    return path


def write_activation_cache(
    path: str | os.PathLike, tokens: np.ndarray, offsets: np.ndarray, chunk_rows: int = DEFAULT_CHUNK_ROWS
) -> Path:
    """Write an example-level activation cache from token rows and example offsets.

    ``last``, ``mean`` and ``max`` are derived from ``tokens`` (the boundary row, the mean
    and the elementwise maximum over each example's rows), so the arrays satisfy the
    extract contract by construction.
    Used by tests and small adapters; large extractions should stream their own writes.
    """
    tokens = _checked_rows("tokens", tokens)
    offsets = _checked_offsets(np.asarray(offsets), tokens.shape[0], "offsets")
    sums = np.add.reduceat(tokens.astype(np.float64), offsets[:-1], axis=0)
    mean = (sums / np.diff(offsets)[:, None]).astype(np.float32)
    maximum = np.maximum.reduceat(tokens, offsets[:-1], axis=0)
    last = tokens[offsets[1:] - 1]
    path = Path(path)
    group = zarr.open_group(str(path), mode="w", zarr_format=3)
    _create_row_array(group, "tokens", tokens, chunk_rows)
    _create_row_array(group, "last", last, chunk_rows)
    _create_row_array(group, "mean", mean, chunk_rows)
    _create_row_array(group, "max", maximum, chunk_rows)
    group.create_array("offsets", shape=offsets.shape, dtype="int64", compressors=None)[...] = offsets
    return path


def write_codes(
    path: str | os.PathLike,
    codes: dict[str, np.ndarray],
    chunk_rows: int = DEFAULT_CHUNK_ROWS,
    attributes: dict[str, Any] | None = None,
) -> Path:
    """Write pooled SAE codes (e.g. ``{"last": [N, F], "mean": [N, F]}``) as a float32 zarr v3 group."""
    if not codes:
        raise InputError("codes: nothing to write (empty mapping)")
    arrays = {name: _checked_rows(f"codes['{name}']", values) for name, values in codes.items()}
    row_counts = {array.shape[0] for array in arrays.values()}
    if len(row_counts) > 1:
        raise InputError(f"codes: arrays disagree on the number of examples {sorted(row_counts)}")
    path = Path(path)
    group = zarr.open_group(str(path), mode="w", zarr_format=3)
    if attributes:
        group.attrs.update(attributes)
    for name in sorted(arrays):
        _create_row_array(group, name, arrays[name], chunk_rows)
    return path


class ChunkAlignedWriter:
    """Fill a preallocated row-chunked array from the start, block by block, in whole chunks.

    zarr stores a chunk as one object, so a write covering only part of a chunk makes
    it read the chunk back, merge and rewrite it; batches of examples never line up with
    chunk boundaries, and writing them as they come rewrites most chunks several times
    (about a third of the LM extraction time on the demo backbones, see bench/README.md).
    This writer copies incoming rows into a buffer of exactly one chunk and writes a
    chunk only when it is complete; whole chunks inside a large block go straight from
    the block to the array. Every write therefore starts on a chunk boundary and covers
    whole chunks, except the last one, which ends the array. zarr has no appending
    writer with this guarantee (``Array.append`` resizes and rewrites the tail chunk).

    Memory: the one-chunk buffer (``buffer_rows`` = the array's chunk rows), whatever the
    block sizes. ``array`` is anything with ``shape``, ``chunks``, ``dtype`` and slice
    assignment (a zarr array, or a numpy-backed stand-in). Call :meth:`close` (or use it
    as a context manager) to write the last, partial chunk.
    """

    def __init__(self, array: Any) -> None:
        chunks = getattr(array, "chunks", None)
        if len(array.shape) < 1 or not chunks or int(chunks[0]) < 1:
            raise InputError(f"ChunkAlignedWriter: expected a row-chunked array, got shape {tuple(array.shape)} chunks {chunks}")
        self.array = array
        self.n_rows = int(array.shape[0])
        self.buffer_rows = int(chunks[0])
        self.row_shape = tuple(int(s) for s in array.shape[1:])
        self._buffer = np.empty((self.buffer_rows, *self.row_shape), dtype=np.dtype(array.dtype))
        self.rows_buffered = 0
        self.rows_written = 0
        self.max_rows_buffered = 0

    @property
    def rows_appended(self) -> int:
        """Rows received so far (written or waiting in the buffer)."""
        return self.rows_written + self.rows_buffered

    def append(self, rows: np.ndarray) -> None:
        """Append ``rows`` [k, *row_shape] after the rows appended so far."""
        rows = np.asarray(rows)
        if rows.shape[1:] != self.row_shape:
            raise InputError(f"ChunkAlignedWriter: rows of shape {rows.shape[1:]} do not match the array's {self.row_shape}")
        if self.rows_appended + len(rows) > self.n_rows:
            raise InputError(
                f"ChunkAlignedWriter: appending {len(rows)} rows after {self.rows_appended} overflows the array's {self.n_rows} rows"
            )
        used = 0
        if self.rows_buffered:
            used = min(self.buffer_rows - self.rows_buffered, len(rows))
            self._buffer[self.rows_buffered : self.rows_buffered + used] = rows[:used]
            self.rows_buffered += used
            self.max_rows_buffered = max(self.max_rows_buffered, self.rows_buffered)
            if self.rows_buffered < self.buffer_rows:
                return
            self._flush()
        whole = (len(rows) - used) // self.buffer_rows * self.buffer_rows
        if whole:
            self.array[self.rows_written : self.rows_written + whole] = rows[used : used + whole]
            self.rows_written += whole
            used += whole
        rest = len(rows) - used
        if rest:
            self._buffer[:rest] = rows[used:]
            self.rows_buffered = rest
            self.max_rows_buffered = max(self.max_rows_buffered, rest)

    def _flush(self) -> None:
        self.array[self.rows_written : self.rows_written + self.rows_buffered] = self._buffer[: self.rows_buffered]
        self.rows_written += self.rows_buffered
        self.rows_buffered = 0

    def close(self) -> int:
        """Write the buffered rows (the last, partial chunk); return the rows written in all."""
        if self.rows_buffered:
            self._flush()
        return self.rows_written

    def __enter__(self) -> ChunkAlignedWriter:
        return self

    def __exit__(self, exc_type: Any, *_: Any) -> None:
        if exc_type is None:
            self.close()


# --------------------------------------------------------------------------- opening


def _open_group(path: str | os.PathLike | zarr.Group, what: str) -> zarr.Group:
    if isinstance(path, zarr.Group):
        return path
    path = Path(path)
    if not path.exists():
        raise InputError(f"{what} {path} does not exist")
    try:
        return zarr.open_group(str(path), mode="r")
    except Exception as error:  # zarr raises several unrelated types for an unreadable store
        raise InputError(f"{what} {path} is not a readable zarr group ({type(error).__name__})") from error


def _require_array(group: zarr.Group, path: Path, name: str, dtype: str, ndim: int) -> zarr.Array:
    try:
        array = group[name]
    except KeyError:
        raise InputError(f"{path}: missing array '{name}' (expected {dtype} with {ndim} dimensions)") from None
    if not isinstance(array, zarr.Array):
        raise InputError(f"{path}: '{name}' is a group, expected a {dtype} array")
    if array.ndim != ndim:
        raise InputError(f"{path}: array '{name}' has {array.ndim} dimensions, expected {ndim}")
    if np.dtype(array.dtype) != np.dtype(dtype):
        raise InputError(f"{path}: array '{name}' has dtype {array.dtype}, expected {dtype}")
    if array.shape[0] == 0:
        raise InputError(f"{path}: array '{name}' is empty")
    return array


@dataclass(frozen=True)
class TrainingCache:
    """An opened SAE training cache; arrays are lazy zarr arrays (nothing loaded)."""

    path: Path
    train: zarr.Array
    heldout: zarr.Array

    @property
    def d_in(self) -> int:
        return int(self.train.shape[1])

    def array(self, name: str) -> zarr.Array:
        if name not in ("train", "heldout"):
            raise InputError(f"array: expected 'train' or 'heldout', got '{name}'")
        return self.train if name == "train" else self.heldout


def _location(source: str | os.PathLike | zarr.Group) -> Path:
    return Path(str(source.store_path)) if isinstance(source, zarr.Group) else Path(source)


def open_training_cache(path: str | os.PathLike | zarr.Group) -> TrainingCache:
    """Open and validate an SAE training cache (path or open group; one-line errors for a
    missing/corrupt group or array)."""
    group = _open_group(path, "SAE training cache")
    path = _location(path)
    train = _require_array(group, path, "train", "float32", 2)
    heldout = _require_array(group, path, "heldout", "float32", 2)
    if heldout.shape[1] != train.shape[1]:
        raise InputError(f"{path}: 'heldout' width {heldout.shape[1]} does not match 'train' width {train.shape[1]}")
    return TrainingCache(path=path, train=train, heldout=heldout)


def _checked_offsets(offsets: np.ndarray, n_tokens: int, where: str) -> np.ndarray:
    if offsets.ndim != 1 or offsets.shape[0] < 2:
        raise InputError(f"{where}: expected int64 offsets [N+1] with N >= 1, got shape {offsets.shape}")
    if not np.issubdtype(offsets.dtype, np.integer):
        raise InputError(f"{where}: expected integer offsets, got dtype {offsets.dtype}")
    offsets = offsets.astype(np.int64)
    if offsets[0] != 0 or offsets[-1] != n_tokens:
        raise InputError(
            f"{where}: offsets must start at 0 and end at the token count {n_tokens}, got {offsets[0]}..{offsets[-1]}"
        )
    if np.any(np.diff(offsets) <= 0):
        raise InputError(f"{where}: offsets must be strictly increasing (every example needs at least one token)")
    return offsets


@dataclass(frozen=True)
class ActivationCache:
    """An opened example-level activation cache; ``offsets`` is loaded (N+1 ints), the rest is lazy."""

    path: Path
    last: zarr.Array
    mean: zarr.Array
    max: zarr.Array
    tokens: zarr.Array
    offsets: np.ndarray

    @property
    def n_examples(self) -> int:
        return int(self.offsets.shape[0] - 1)

    @property
    def d(self) -> int:
        return int(self.tokens.shape[1])


def open_activation_cache(path: str | os.PathLike | zarr.Group) -> ActivationCache:
    """Open and validate an example-level activation cache (``last``, ``mean``, ``max``,
    ``tokens``, ``offsets``), given its path or an open zarr group."""
    group = _open_group(path, "activation cache")
    path = _location(path)
    tokens = _require_array(group, path, "tokens", "float32", 2)
    last = _require_array(group, path, "last", "float32", 2)
    mean = _require_array(group, path, "mean", "float32", 2)
    maximum = _require_array(group, path, "max", "float32", 2)
    offsets_array = _require_array(group, path, "offsets", "int64", 1)
    offsets = _checked_offsets(np.asarray(offsets_array[...]), tokens.shape[0], f"{path}: 'offsets'")
    n_examples = offsets.shape[0] - 1
    for name, array in (("last", last), ("mean", mean), ("max", maximum)):
        if array.shape != (n_examples, tokens.shape[1]):
            raise InputError(
                f"{path}: array '{name}' has shape {array.shape}, expected {(n_examples, tokens.shape[1])}"
            )
    return ActivationCache(path=path, last=last, mean=mean, max=maximum, tokens=tokens, offsets=offsets)


def iter_row_blocks(array: Any, block_rows: int, stop: int | None = None) -> Iterator[np.ndarray]:
    """Consecutive float32 row blocks of a zarr/numpy array (rows ``[0, stop)``), ``block_rows``
    at a time, so memory stays bounded."""
    if block_rows < 1:
        raise InputError(f"batch_size: expected >= 1, got {block_rows}")
    end = int(array.shape[0]) if stop is None else min(stop, int(array.shape[0]))
    for start in range(0, end, block_rows):
        yield np.asarray(array[start : min(start + block_rows, end)], dtype=np.float32)


# --------------------------------------------------------------------------- streaming


class ZarrBatchStream(Iterator[torch.Tensor]):
    """Shuffled float32 ``[batch_size, d]`` batches from a row-chunked array, in bounded memory.

    Algorithm. Each epoch visits the array's chunks in a seeded random order. Chunks go
    into a mixing buffer of ``capacity_rows = max_batches_in_memory * batch_size`` rows
    (the ``sae`` stage sizes it to two chunks plus a batch); when the next chunk does not
    fit, the buffered rows are shuffled and batches are drained from the end until the
    buffer is at most half full and the chunk fits. Rows left in the buffer are shuffled
    again with the next chunks, so a row can leave in any later batch.

    Guarantees: at most ``capacity_rows`` rows are ever buffered (``max_rows_buffered``
    records the peak, ``max_rows_read_at_once`` the largest single read, one chunk); the
    array is never loaded whole; every row enters the buffer exactly once per epoch, so
    ``epochs=k`` emits every row k times (minus the last partial batch, ``rows_dropped``,
    fewer than ``batch_size`` rows); the same ``(array, batch_size, seed,
    max_batches_in_memory)`` gives the same batches. ``epochs=None`` streams forever (what
    sae-lens' trainer expects).

    Why it is written this way (bench/README.md, item 2): the shuffle is one seeded
    ``permutation`` gathered into a second, preallocated buffer of the same size, which
    then becomes the buffer (numpy's ``Generator.shuffle`` on a 2-D array swaps rows one
    at a time and made the stream 0.73-0.77 of an in-memory loader); and zarr arrays decode
    each chunk straight into the buffer (``get_basic_selection(out=...)``) instead of into
    a fresh array that is then copied. Memory is therefore two fixed buffers of
    ``capacity_rows`` rows, allocated once. Other array types (anything with ``shape``
    and row slicing) are read with ``array[start:stop]`` and copied in.
    """

    def __init__(
        self,
        array: Any,
        batch_size: int,
        seed: int,
        max_batches_in_memory: int = DEFAULT_MAX_BATCHES_IN_MEMORY,
        epochs: int | None = None,
    ) -> None:
        if batch_size < 1:
            raise InputError(f"batch_size: expected >= 1, got {batch_size}")
        if max_batches_in_memory < 1:
            raise InputError(f"max_batches_in_memory: expected >= 1, got {max_batches_in_memory}")
        if epochs is not None and epochs < 1:
            raise InputError(f"epochs: expected None or >= 1, got {epochs}")
        if len(array.shape) != 2 or array.shape[0] == 0:
            raise InputError(f"stream_batches: expected a non-empty 2-D array, got shape {tuple(array.shape)}")
        self.array = array
        self.batch_size = batch_size
        self.n_rows, self.d = int(array.shape[0]), int(array.shape[1])
        chunks = getattr(array, "chunks", None)
        self.chunk_rows = min(int(chunks[0]) if chunks else DEFAULT_CHUNK_ROWS, self.n_rows)
        self.capacity_rows = max_batches_in_memory * batch_size
        if self.capacity_rows < self.chunk_rows + batch_size:
            needed = -(-(self.chunk_rows + batch_size) // batch_size)
            raise InputError(
                f"max_batches_in_memory={max_batches_in_memory} holds {self.capacity_rows} rows, too few for a "
                f"{self.chunk_rows}-row chunk plus a batch of {batch_size}; use at least {needed}"
            )
        self.epochs = epochs
        self.epoch = 0
        self.rows_buffered = 0
        self.max_rows_buffered = 0
        self.max_rows_read_at_once = 0
        self.rows_read = 0
        self.batches_emitted = 0
        self.rows_dropped = 0
        self.chunk_order: list[int] = []  # chunks read so far, in reading order
        self._rng = np.random.default_rng(seed)
        self._buffer = np.empty((self.capacity_rows, self.d), dtype=np.float32)
        self._gathered = np.empty_like(self._buffer)  # the shuffle's target; swapped with _buffer
        self._batches = self._generate()

    def __iter__(self) -> ZarrBatchStream:
        return self

    def __next__(self) -> torch.Tensor:
        return next(self._batches)

    def _shuffle_buffered(self) -> None:
        """Permute the buffered rows: one gather into the spare buffer, then swap the two."""
        filled = self.rows_buffered
        # mode="clip": the indices are a permutation (always valid), and "raise" would buffer `out`
        np.take(self._buffer[:filled], self._rng.permutation(filled), axis=0, out=self._gathered[:filled], mode="clip")
        self._buffer, self._gathered = self._gathered, self._buffer

    def _drain(self, keep_at_most: int) -> Iterator[torch.Tensor]:
        """Shuffle the buffered rows, then emit batches until at most ``keep_at_most`` rows remain."""
        if self.rows_buffered >= self.batch_size:
            self._shuffle_buffered()
        while self.rows_buffered > keep_at_most and self.rows_buffered >= self.batch_size:
            stop = self.rows_buffered
            batch = self._buffer[stop - self.batch_size : stop].copy()
            self.rows_buffered -= self.batch_size
            self.batches_emitted += 1
            yield torch.from_numpy(batch)

    def _read_rows_into_buffer(self, start: int, stop: int) -> None:
        """Append rows ``[start, stop)`` of the array to the buffer (zarr decodes in place)."""
        target = self._buffer[self.rows_buffered : self.rows_buffered + stop - start]
        if isinstance(self.array, zarr.Array) and np.dtype(self.array.dtype) == np.float32:
            out = default_buffer_prototype().nd_buffer.from_numpy_array(target)
            self.array.get_basic_selection((slice(start, stop), slice(None)), out=out)
        else:
            target[...] = np.asarray(self.array[start:stop], dtype=np.float32)

    def _generate(self) -> Iterator[torch.Tensor]:
        n_chunks = -(-self.n_rows // self.chunk_rows)
        while self.epochs is None or self.epoch < self.epochs:
            for chunk in self._rng.permutation(n_chunks):
                start = int(chunk) * self.chunk_rows
                stop = min(start + self.chunk_rows, self.n_rows)
                size = stop - start
                if self.rows_buffered + size > self.capacity_rows:
                    yield from self._drain(min(self.capacity_rows - size, self.capacity_rows // 2))
                self._read_rows_into_buffer(start, stop)
                self.max_rows_read_at_once = max(self.max_rows_read_at_once, size)
                self.rows_buffered += size
                self.rows_read += size
                self.chunk_order.append(int(chunk))
                self.max_rows_buffered = max(self.max_rows_buffered, self.rows_buffered)
            self.epoch += 1
        yield from self._drain(0)
        self.rows_dropped = self.rows_buffered


def stream_batches(
    zarr_array: Any,
    batch_size: int,
    seed: int,
    max_batches_in_memory: int = DEFAULT_MAX_BATCHES_IN_MEMORY,
    epochs: int | None = None,
) -> ZarrBatchStream:
    """Shuffled, bounded-memory batches of a row-chunked array; see :class:`ZarrBatchStream`."""
    return ZarrBatchStream(zarr_array, batch_size, seed, max_batches_in_memory=max_batches_in_memory, epochs=epochs)
