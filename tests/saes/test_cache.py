"""Zarr caches: validated opening (one-line errors), bounded shuffled streaming, chunk-aligned writing."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import zarr

from sae_difficulty.saes.cache import (
    ChunkAlignedWriter,
    open_activation_cache,
    open_training_cache,
    stream_batches,
    write_activation_cache,
    write_codes,
    write_training_cache,
)
from sae_difficulty.saes.encoding import read_codes
from sae_difficulty.utils.errors import InputError


class SpyRows:
    """A row-chunked array that records every read, to prove the stream never loads it whole."""

    def __init__(self, data: np.ndarray, chunk_rows: int) -> None:
        self.data = data
        self.shape = data.shape
        self.chunks = (chunk_rows, data.shape[1])
        self.reads: list[int] = []

    def __getitem__(self, key: slice) -> np.ndarray:
        rows = self.data[key]
        self.reads.append(rows.shape[0])
        return rows


def _row_ids(n_rows: int, d: int = 3) -> np.ndarray:
    """Row i carries i in column 0, so emitted rows can be traced back to the source."""
    data = np.zeros((n_rows, d), dtype=np.float32)
    data[:, 0] = np.arange(n_rows)
    return data


def test_stream_never_buffers_more_than_the_configured_batches() -> None:
    spy = SpyRows(_row_ids(40 * 256), chunk_rows=256)  # 40 chunks
    stream = stream_batches(spy, batch_size=128, seed=0, max_batches_in_memory=4)
    first = next(stream)
    assert sum(spy.reads) <= 4 * 128  # the first batch came after reading one buffer's worth, not the array
    for _ in range(200):  # > 2 epochs
        batch = next(stream)
        assert batch.shape == (128, 3) and batch.dtype == torch.float32
    assert first.shape == (128, 3)
    assert stream.max_rows_buffered <= stream.capacity_rows == 4 * 128
    assert max(spy.reads) <= 256
    assert stream.max_rows_read_at_once <= 256
    assert stream.epoch >= 2


def test_one_epoch_yields_every_row_at_most_once_in_shuffled_chunk_order() -> None:
    data = _row_ids(5000)
    group = zarr.open_group(zarr.storage.MemoryStore(), mode="w", zarr_format=3)
    array = group.create_array("train", shape=data.shape, chunks=(500, 3), dtype="float32")
    array[...] = data
    stream = stream_batches(array, batch_size=64, seed=3, max_batches_in_memory=16, epochs=1)
    ids = np.concatenate([batch[:, 0].numpy() for batch in stream]).astype(int)
    assert len(ids) == len(set(ids)) == 5000 - stream.rows_dropped
    assert stream.rows_dropped < 64
    assert sorted(stream.chunk_order) == list(range(10)) and stream.chunk_order != list(range(10))
    # rows are mixed across chunks: a batch holds rows of several chunks
    batch_chunks = {int(i) // 500 for i in ids[:64]}
    assert len(batch_chunks) > 1


def test_stream_is_reproducible_for_a_seed_and_differs_across_seeds() -> None:
    data = _row_ids(4096)

    def first_batches(seed: int) -> list[torch.Tensor]:
        stream = stream_batches(SpyRows(data, 256), batch_size=128, seed=seed, max_batches_in_memory=8)
        return [next(stream) for _ in range(10)]

    same = zip(first_batches(7), first_batches(7))
    assert all(torch.equal(a, b) for a, b in same)
    assert not torch.equal(first_batches(7)[0], first_batches(8)[0])


def test_stream_rejects_a_buffer_smaller_than_a_chunk_plus_a_batch() -> None:
    with pytest.raises(InputError, match="max_batches_in_memory=2") as error:
        stream_batches(SpyRows(_row_ids(4096), 1024), batch_size=512, seed=0, max_batches_in_memory=2)
    assert "\n" not in str(error.value)


def test_training_cache_round_trip(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    train, heldout = rng.standard_normal((1000, 8)), rng.standard_normal((300, 8))
    write_training_cache(tmp_path / "c.zarr", train, heldout, chunk_rows=128)
    cache = open_training_cache(tmp_path / "c.zarr")
    assert cache.d_in == 8 and cache.train.chunks == (128, 8) and cache.train.dtype == np.float32
    np.testing.assert_array_equal(cache.heldout[...], heldout.astype(np.float32))


@pytest.mark.parametrize(
    ("arrays", "message"),
    [
        ({"train": np.zeros((10, 4), np.float32)}, "missing array 'heldout'"),
        ({"train": np.zeros((10, 4), np.float64), "heldout": np.zeros((5, 4), np.float32)}, "dtype float64"),
        ({"train": np.zeros(10, np.float32), "heldout": np.zeros((5, 4), np.float32)}, "1 dimensions"),
        ({"train": np.zeros((10, 4), np.float32), "heldout": np.zeros((5, 3), np.float32)}, "width 3"),
    ],
)
def test_corrupt_training_cache_is_refused_with_one_line(tmp_path: Path, arrays: dict, message: str) -> None:
    group = zarr.open_group(str(tmp_path / "bad.zarr"), mode="w", zarr_format=3)
    for name, values in arrays.items():
        group.create_array(name, shape=values.shape, dtype=values.dtype)[...] = values
    with pytest.raises(InputError, match=message) as error:
        open_training_cache(tmp_path / "bad.zarr")
    assert "\n" not in str(error.value) and "bad.zarr" in str(error.value)


def test_missing_or_unreadable_cache_is_refused(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="does not exist"):
        open_training_cache(tmp_path / "absent.zarr")
    (tmp_path / "junk.zarr").write_text("not a zarr group")
    with pytest.raises(InputError, match="not a readable zarr group"):
        open_training_cache(tmp_path / "junk.zarr")


def test_activation_cache_contract(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    tokens = rng.standard_normal((20, 4)).astype(np.float32)
    offsets = np.array([0, 5, 6, 20])
    cache = open_activation_cache(write_activation_cache(tmp_path / "a.zarr", tokens, offsets, chunk_rows=8))
    assert cache.n_examples == 3 and cache.d == 4
    np.testing.assert_array_equal(cache.last[...], tokens[[4, 5, 19]])
    np.testing.assert_allclose(cache.mean[...][2], tokens[6:20].mean(0), rtol=1e-6)
    with pytest.raises(InputError, match="strictly increasing"):
        write_activation_cache(tmp_path / "b.zarr", tokens, np.array([0, 5, 5, 20]))
    with pytest.raises(InputError, match="end at the token count 20"):
        write_activation_cache(tmp_path / "c.zarr", tokens, np.array([0, 5, 19]))


def test_write_codes_round_trip_and_validation(tmp_path: Path) -> None:
    codes = {"last": np.eye(5, 7, dtype=np.float64), "mean": np.ones((5, 7))}
    write_codes(tmp_path / "codes.zarr", codes, chunk_rows=2, attributes={"sae": "x"})
    back = read_codes(tmp_path / "codes.zarr")
    assert back["last"].dtype == np.float32
    np.testing.assert_array_equal(back["last"], codes["last"])
    assert zarr.open_group(str(tmp_path / "codes.zarr"), mode="r").attrs["sae"] == "x"
    with pytest.raises(InputError, match="disagree"):
        write_codes(tmp_path / "bad.zarr", {"last": np.ones((5, 7)), "mean": np.ones((4, 7))})


class WriteSpy:
    """A numpy-backed row-chunked array that records every slice written into it."""

    def __init__(self, n_rows: int, d: int, chunk_rows: int) -> None:
        self.data = np.full((n_rows, d), np.nan, dtype=np.float32)
        self.shape = self.data.shape
        self.chunks = (chunk_rows, d)
        self.dtype = self.data.dtype
        self.writes: list[tuple[int, int]] = []

    def __setitem__(self, key: slice, value: np.ndarray) -> None:
        self.writes.append((key.start, key.stop))
        self.data[key] = value


def test_chunk_aligned_writer_of_ragged_blocks_equals_one_write(tmp_path: Path) -> None:
    rows = _row_ids(1000, d=4) + np.random.default_rng(0).standard_normal((1000, 4)).astype(np.float32)
    cuts = [0, 3, 4, 70, 71, 400, 401, 1000]  # blocks of 3, 1, 66, 1, 329, 1, 599 rows
    group = zarr.open_group(str(tmp_path / "w.zarr"), mode="w", zarr_format=3)
    kwargs = {"shape": rows.shape, "chunks": (64, 4), "dtype": "float32", "compressors": None}
    at_once = group.create_array("at_once", **kwargs)
    at_once[...] = rows
    with ChunkAlignedWriter(group.create_array("appended", **kwargs)) as writer:
        for start, stop in zip(cuts[:-1], cuts[1:]):
            writer.append(rows[start:stop])
    assert writer.rows_written == 1000
    np.testing.assert_array_equal(group["appended"][...], group["at_once"][...])
    np.testing.assert_array_equal(group["appended"][...], rows)


def test_chunk_aligned_writer_buffers_at_most_one_chunk_and_writes_whole_chunks() -> None:
    spy = WriteSpy(n_rows=1000, d=3, chunk_rows=64)
    writer = ChunkAlignedWriter(spy)
    rng = np.random.default_rng(1)
    appended = 0
    while appended < 1000:
        size = int(min(rng.integers(1, 150), 1000 - appended))
        writer.append(_row_ids(1000)[appended : appended + size])
        appended += size
        assert writer.rows_buffered < 64  # everything before the last chunk boundary is already on disk
        assert writer.rows_written == appended // 64 * 64
    writer.close()
    assert writer.max_rows_buffered <= writer.buffer_rows == 64
    assert all(start % 64 == 0 and (stop - start) % 64 == 0 for start, stop in spy.writes[:-1])
    assert spy.writes[-1][0] % 64 == 0 and spy.writes[-1][1] == 1000  # only the array's last chunk is partial
    np.testing.assert_array_equal(spy.data, _row_ids(1000))


def test_chunk_aligned_writer_refuses_overflow_and_wrong_width() -> None:
    writer = ChunkAlignedWriter(WriteSpy(n_rows=10, d=3, chunk_rows=4))
    with pytest.raises(InputError, match="do not match"):
        writer.append(np.zeros((2, 5), dtype=np.float32))
    writer.append(np.zeros((8, 3), dtype=np.float32))
    with pytest.raises(InputError, match="overflows the array's 10 rows"):
        writer.append(np.zeros((3, 3), dtype=np.float32))


@pytest.mark.parametrize("backend", ["zarr", "spy"])
def test_each_epoch_is_a_permutation_of_all_rows_in_a_bounded_buffer(backend: str) -> None:
    n_rows, chunk_rows, batch_size, epochs = 78 * 64, 500, 64, 3  # rows divisible by the batch: nothing dropped
    data = _row_ids(n_rows)
    if backend == "zarr":  # decoded in place into the buffer
        group = zarr.open_group(zarr.storage.MemoryStore(), mode="w", zarr_format=3)
        array = group.create_array("train", shape=data.shape, chunks=(chunk_rows, 3), dtype="float32")
        array[...] = data
    else:  # generic row-sliceable array, copied in
        array = SpyRows(data, chunk_rows)
    capacity = 2 * chunk_rows + batch_size  # two chunks plus a batch, as the sae stage sizes it
    stream = stream_batches(array, batch_size, seed=5, max_batches_in_memory=-(-capacity // batch_size), epochs=epochs)
    ids = np.concatenate([batch[:, 0].numpy() for batch in stream]).astype(int)
    assert stream.rows_dropped == 0 and stream.rows_read == epochs * n_rows
    assert np.array_equal(np.bincount(ids, minlength=n_rows), np.full(n_rows, epochs))
    assert not np.array_equal(ids[:n_rows], np.arange(n_rows))  # shuffled, not the stored order
    assert stream.max_rows_buffered <= stream.capacity_rows < 3 * chunk_rows
    assert stream.max_rows_read_at_once == chunk_rows
    # the first epoch's rows leave before the buffer could hold them all: a permutation of
    # every row needs all of them to pass through it, and it never holds more than capacity
    first_epoch_rows = np.bincount(ids[: n_rows - stream.capacity_rows], minlength=n_rows)
    assert first_epoch_rows.max() == 1
