"""The `sae` stage's ``rows`` option: the primary recipe on disjoint halves of the cache (stability reference)."""

from __future__ import annotations

import numpy as np
import pytest

from sae_difficulty.saes.cache import stream_batches
from sae_difficulty.stages.sae import RowRange, half_rows
from sae_difficulty.utils.errors import InputError


def test_halves_are_disjoint_and_cover_the_cache():
    first, second = half_rows(1001, "first_half"), half_rows(1001, "second_half")
    assert first == (0, 500) and second == (500, 1001)
    with pytest.raises(InputError, match="rows"):
        half_rows(10, "middle")


def test_a_stream_over_one_half_never_yields_a_row_of_the_other():
    """Rows are tagged by their index; every streamed row of the second half has an index in it."""
    rows = np.repeat(np.arange(1000, dtype=np.float32)[:, None], 4, axis=1)

    class Chunked(np.ndarray):
        chunks = (128, 4)

    array = rows.view(Chunked)
    start, stop = half_rows(1000, "second_half")
    seen = np.concatenate([batch.numpy()[:, 0] for _, batch in zip(range(20), stream_batches(RowRange(array, start, stop), 32, seed=0))])
    assert seen.min() >= start and seen.max() < stop and np.unique(seen).size > 300
