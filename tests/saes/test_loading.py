"""Loading guardrails, reconstruction, pooled codes and the quality report of a trained SAE."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import zarr

from sae_difficulty.saes.cache import write_activation_cache, write_codes
from sae_difficulty.saes.encoding import (
    encode_pooled,
    encode_rows,
    read_codes,
    reconstruct,
)
from sae_difficulty.saes.loading import load_sae
from sae_difficulty.saes.quality import (
    evaluate_quality,
    plot_feature_frequency,
    write_quality_report,
)
from sae_difficulty.saes.training import SAETrainingSpec, make_training_sae, save_sae
from sae_difficulty.utils.errors import InputError

from .conftest import D_IN, EXPANSION, K, Planted


def _one_line(error: pytest.ExceptionInfo[InputError]) -> str:
    message = str(error.value)
    assert "\n" not in message
    return message


def test_missing_checkpoint_is_refused(tmp_path: Path, trained_topk: dict[int, Path]) -> None:
    with pytest.raises(InputError, match="does not exist") as error:
        load_sae(tmp_path / "nowhere")
    _one_line(error)
    partial = tmp_path / "partial"
    shutil.copytree(trained_topk[0], partial)
    (partial / "sae_weights.safetensors").unlink()
    with pytest.raises(InputError, match="missing sae_weights.safetensors") as error:
        load_sae(partial)
    _one_line(error)
    corrupt = tmp_path / "corrupt"
    shutil.copytree(trained_topk[0], corrupt)
    (corrupt / "sae_weights.safetensors").write_bytes(b"garbage")
    with pytest.raises(InputError, match="sae-lens cannot load it") as error:
        load_sae(corrupt)
    _one_line(error)


def test_d_in_mismatch_is_refused(trained_topk: dict[int, Path]) -> None:
    assert load_sae(trained_topk[0], expected_d_in=D_IN).cfg.d_in == D_IN
    with pytest.raises(InputError, match=f"d_in={D_IN} does not match the activation cache width d=64") as error:
        load_sae(trained_topk[0], expected_d_in=64)
    _one_line(error)


def test_architecture_outside_the_allowed_set_is_refused(trained_topk: dict[int, Path]) -> None:
    assert load_sae(trained_topk[0], allowed_architectures={"topk", "relu"}) is not None
    with pytest.raises(InputError, match="architecture 'topk' is not one this stage was asked for") as error:
        load_sae(trained_topk[0], allowed_architectures=["relu", "batchtopk"])
    _one_line(error)


def test_random_init_sae_falls_below_the_explained_variance_floor(
    planted: Planted, trained_topk: dict[int, Path], tmp_path: Path
) -> None:
    torch.manual_seed(0)
    untrained = make_training_sae(SAETrainingSpec(architecture="topk", expansion=EXPANSION, k=K), D_IN)
    save_sae(untrained, tmp_path / "random")
    assert load_sae(trained_topk[0], heldout=planted.heldout, min_explained_variance=0.5) is not None
    with pytest.raises(InputError, match="below the floor 0.5 \\(untrained or random-init SAE\\?\\)") as error:
        load_sae(tmp_path / "random", heldout=planted.heldout, min_explained_variance=0.5)
    _one_line(error)
    with pytest.raises(InputError, match="needs held-out activations"):
        load_sae(trained_topk[0], min_explained_variance=0.5)


def test_reconstruct_matches_forward_and_ablation_removes_one_decoder_term(
    planted: Planted, trained_topk: dict[int, Path]
) -> None:
    sae = load_sae(trained_topk[0])
    x = torch.from_numpy(planted.heldout[:96]).reshape(4, 24, D_IN)  # [..., d] with two leading dims
    with torch.no_grad():
        full = reconstruct(sae, x)
        assert torch.equal(full, sae(x))
        codes = sae.encode(x)
        feature = int(codes.reshape(-1, sae.cfg.d_sae).count_nonzero(0).argmax())  # the busiest feature
        ablated = reconstruct(sae, x, ablate_features=[feature])
        expected_change = codes[..., feature : feature + 1] * sae.W_dec[feature]
        torch.testing.assert_close(full - ablated, expected_change, atol=1e-5, rtol=1e-5)
        assert expected_change.abs().sum() > 0
    with pytest.raises(InputError, match="ablate_features"):
        reconstruct(sae, x, ablate_features=[sae.cfg.d_sae])


def test_encode_pooled_means_the_codes_not_the_activations(
    planted: Planted, trained_topk: dict[int, Path], tmp_path: Path
) -> None:
    sae = load_sae(trained_topk[0])
    rng = np.random.default_rng(0)
    lengths = rng.integers(1, 12, size=40)
    offsets = np.concatenate([[0], np.cumsum(lengths)])
    tokens = planted.heldout[: offsets[-1]]
    cache = write_activation_cache(tmp_path / "extract.zarr", tokens, offsets, chunk_rows=16)
    pooled = encode_pooled(sae, cache, batch_size=7)  # batches cut through examples
    with torch.no_grad():
        token_codes = sae.encode(torch.from_numpy(tokens)).numpy()
        codes_of_mean = sae.encode(
            torch.from_numpy(np.stack([tokens[a:b].mean(0) for a, b in zip(offsets, offsets[1:])]))
        ).numpy()
    expected_mean = np.stack([token_codes[a:b].mean(0) for a, b in zip(offsets, offsets[1:])])
    np.testing.assert_allclose(pooled["mean"], expected_mean, rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(pooled["last"], token_codes[offsets[1:] - 1])
    assert np.abs(codes_of_mean - expected_mean).max() > 0.1  # the two poolings really differ
    assert pooled["mean"].dtype == np.float32 and pooled["mean"].shape == (40, sae.cfg.d_sae)
    from_group = encode_pooled(sae, zarr.open_group(str(cache), mode="r"), batch_size=4096)
    np.testing.assert_allclose(from_group["mean"], pooled["mean"], rtol=1e-5, atol=1e-6)
    write_codes(tmp_path / "codes.zarr", pooled)
    np.testing.assert_array_equal(read_codes(tmp_path / "codes.zarr")["mean"], pooled["mean"])
    with pytest.raises(InputError, match="expected \\[rows, 32\\]"):
        encode_rows(sae, np.zeros((3, 16), np.float32))


def test_quality_report_files_and_deterministic_png(
    planted: Planted, trained_topk: dict[int, Path], tmp_path: Path
) -> None:
    quality = evaluate_quality(load_sae(trained_topk[0]), planted.heldout)
    assert (
        evaluate_quality(load_sae(trained_topk[0]), planted.heldout, batch_size=300, max_rows=1000).metrics["n_tokens"]
        == 1000
    )
    extra = {"spliced_loss": {"delta": 0.25, "fraction_recovered": 0.9}, "stability": {"pwmcc_mean": 0.8, "pairs": []}}
    paths = write_quality_report(tmp_path / "a", "sae_quality", quality, extra=extra, title="topk seed 0")
    write_quality_report(tmp_path / "b", "sae_quality", quality, extra=extra, title="topk seed 0")
    for key in ("json", "parquet", "frequency_parquet", "png"):
        assert paths[key].read_bytes() == (tmp_path / "b" / paths[key].name).read_bytes()
    detail = json.loads(paths["json"].read_text())
    assert detail["explained_variance"] == pytest.approx(quality.metrics["explained_variance"])
    assert detail["spliced_loss"]["delta"] == 0.25
    row = pd.read_parquet(paths["parquet"])
    assert len(row) == 1 and row["spliced_loss.fraction_recovered"].item() == 0.9
    frequencies = pd.read_parquet(paths["frequency_parquet"])
    np.testing.assert_array_equal(frequencies["frequency"].to_numpy(), quality.feature_frequency)
    assert paths["png"].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    other = plot_feature_frequency(np.r_[quality.feature_frequency[:-5], np.zeros(5)], tmp_path / "other.png", "x")
    assert other.read_bytes() != paths["png"].read_bytes()
