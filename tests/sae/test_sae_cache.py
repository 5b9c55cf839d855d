"""Zarr caches: validated opening (one-line errors) and bounded, shuffled streaming."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import zarr

from sae_difficulty.errors import InputError
from sae_difficulty.sae import (
    open_activation_cache,
    open_training_cache,
    read_codes,
    stream_batches,
    write_activation_cache,
    write_codes,
    write_training_cache,
)


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
