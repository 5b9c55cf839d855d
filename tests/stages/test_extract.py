"""Stage extract: token rows of every context step, and last/mean pooling that follow from them."""

from __future__ import annotations

import numpy as np
import pandas as pd
import zarr

from sae_difficulty.pipeline.artifacts import ACTIVATIONS, EXAMPLES
from sae_difficulty.utils.io import read_json

from .conftest import TSFM_CONTEXT, TinyStudy


def test_pooled_rows_are_the_last_and_mean_token_rows(tsfm_study: TinyStudy) -> None:
    group = zarr.open_group(str(tsfm_study.extract / ACTIVATIONS), mode="r")
    tokens, last, mean = (np.asarray(group[name][...]) for name in ("tokens", "last", "mean"))
    offsets = np.asarray(group["offsets"][...])
    n, d = last.shape
    examples = pd.read_parquet(tsfm_study.tasks / EXAMPLES)
    assert n == len(examples) and d == tsfm_study.params["backbone"]["d_model"]
    assert tokens.shape == (n * TSFM_CONTEXT, d) and list(offsets) == list(range(0, n * TSFM_CONTEXT + 1, TSFM_CONTEXT))
    np.testing.assert_array_equal(last, tokens[offsets[1:] - 1])
    np.testing.assert_allclose(mean, tokens.reshape(n, TSFM_CONTEXT, d).mean(axis=1), rtol=1e-5, atol=1e-6)
    assert np.abs(tokens).max() > 0 and tokens.std(axis=0).min() > 0  # real states, not a zero fill
    pd.testing.assert_frame_equal(pd.read_parquet(tsfm_study.extract / EXAMPLES), examples)
    summary = read_json(tsfm_study.extract / "extract.json")
    assert summary["layer"] == 1 and summary["n_tokens"] == n * TSFM_CONTEXT
