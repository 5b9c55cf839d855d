"""Stage codes: SAE codes pooled like the raw activations (last = codes of the last row,
mean and max = mean and maximum of the rows' codes), and refusal of an SAE that explains too little."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import zarr
from conftest import node_context

from sae_difficulty.pipeline.artifacts import ACTIVATIONS, CODES, EXAMPLES
from sae_difficulty.stages import codes
from sae_difficulty.utils.errors import InputError

from .conftest import TSFM_CONTEXT, TinyStudy, save_decoder_sae, save_identity_sae


def test_identity_sae_codes_are_the_pooled_positive_and_negative_parts(tsfm_study: TinyStudy, tmp_path: Path) -> None:
    d = tsfm_study.params["backbone"]["d_model"]
    sae_dir = save_identity_sae(tmp_path / "sae", d)
    ctx = node_context("codes", {"min_explained_variance": 0.99}, tmp_path / "c00000000000",
                       {"sae": sae_dir, "extract": tsfm_study.extract})  # fmt: skip
    codes.build(ctx)
    group = zarr.open_group(str(tsfm_study.extract / ACTIVATIONS), mode="r")
    tokens, last = np.asarray(group["tokens"][...], dtype=np.float64), np.asarray(group["last"][...], dtype=np.float64)
    out = zarr.open_group(str(ctx.out / CODES), mode="r")
    code_last, code_mean = np.asarray(out["last"][...]), np.asarray(out["mean"][...])
    n = last.shape[0]
    assert code_last.shape == code_mean.shape == (n, 2 * d + 1)
    np.testing.assert_allclose(code_last[:, :d], np.maximum(last, 0), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(code_last[:, d : 2 * d], np.maximum(-last, 0), rtol=1e-5, atol=1e-5)
    # mean pooling averages the codes, not the code of the averaged row
    per_example = tokens.reshape(n, TSFM_CONTEXT, d)
    np.testing.assert_allclose(code_mean[:, :d], np.maximum(per_example, 0).mean(axis=1), rtol=1e-4, atol=1e-5)
    assert not np.allclose(code_mean[:, :d], np.maximum(per_example.mean(axis=1), 0), atol=1e-3)
    assert (code_mean[:, -1] == 0).all()
    # max pooling: the largest code over the tokens; for the negative parts that is relu(-min x),
    # not the code of the max-pooled row relu(-max x)
    code_max = np.asarray(out["max"][...])
    np.testing.assert_allclose(code_max[:, d : 2 * d], np.maximum(-per_example, 0).max(axis=1), rtol=1e-5, atol=1e-5)
    assert not np.allclose(code_max[:, d : 2 * d], np.maximum(-np.asarray(group["max"][...]), 0), atol=1e-3)
    np.testing.assert_allclose(np.asarray(group["max"][...]), per_example.max(axis=1), rtol=1e-6)  # the raw max view
    pd.testing.assert_frame_equal(pd.read_parquet(ctx.out / EXAMPLES), pd.read_parquet(tsfm_study.extract / EXAMPLES))


def test_a_random_init_sae_is_refused(tsfm_study: TinyStudy, tmp_path: Path) -> None:
    d = tsfm_study.params["backbone"]["d_model"]
    torch.manual_seed(0)
    sae_dir = save_decoder_sae(tmp_path / "sae", np.random.default_rng(0).normal(size=(2 * d, d)))
    ctx = node_context("codes", {"min_explained_variance": 0.5}, tmp_path / "c00000000000",
                       {"sae": sae_dir, "extract": tsfm_study.extract})  # fmt: skip
    with pytest.raises(InputError, match="explained variance .* below the floor 0.5"):
        codes.build(ctx)
