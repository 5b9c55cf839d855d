"""The sae-lens-free reader of sae-lens checkpoints (``saes/checkpoint.py``) computes sae-lens' own codes.

Each architecture the project trains is trained with the project's sae-lens trainer on the
planted data and saved with sae-lens' ``save_inference_model`` (TopK; ReLU+L1, which
sae-lens calls "standard"; BatchTopK, which sae-lens saves as JumpReLU with its learned
threshold). The variants the format allows beyond what the project saves are built with
sae-lens' inference classes and saved with ``save_model``: TopK with decoder-norm
rescaling (decoder rows of unequal norms, so the rescaling changes which features win),
no decoder-bias shift (a non-zero ``b_dec``), JumpReLU with per-feature thresholds that
cut positive pre-activations. sae-lens loads every checkpoint with ``SAE.load_from_disk``;
the reader's ``encode``/``decode`` must agree with it to 1e-6.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from sae_lens import SAE, JumpReLUSAE, JumpReLUSAEConfig, StandardSAE, StandardSAEConfig, TopKSAE, TopKSAEConfig
from sae_lens.constants import SAE_CFG_FILENAME, SAE_WEIGHTS_FILENAME

from sae_difficulty.saes import checkpoint
from sae_difficulty.saes.checkpoint import SaeCheckpoint, read_checkpoint
from sae_difficulty.saes.encoding import decoder_directions, encode_rows, sae_architecture
from sae_difficulty.saes.training import SAETrainingSpec, train_sae
from sae_difficulty.utils.errors import InputError

from .conftest import BATCH_SIZE, D_IN, EXPANSION, K, Planted

TOLERANCE = 1e-6
TRAIN_STEPS = 60


def _agreement(path: Path, rows: np.ndarray) -> dict[str, Any]:
    """Codes and reconstructions of ``rows`` by sae-lens and by the reader, and their largest differences."""
    reference = SAE.load_from_disk(str(path)).eval()
    light = read_checkpoint(path)
    x = torch.from_numpy(np.asarray(rows, dtype=np.float32))
    with torch.no_grad():
        codes, light_codes = reference.encode(x), light.encode(x)
        decoded, light_decoded = reference.decode(codes), light.decode(codes)
    return {
        "reference": reference,
        "light": light,
        "codes": codes.numpy(),
        "codes_diff": float((codes - light_codes).abs().max()),
        "decode_diff": float((decoded - light_decoded).abs().max()),
    }


@pytest.fixture(scope="module")
def trained(planted: Planted, trained_topk: dict[int, Path], tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """One checkpoint per architecture the project trains, each saved by sae-lens."""
    root = tmp_path_factory.mktemp("architectures")
    paths = {"topk": trained_topk[0]}
    for architecture in ("relu", "batchtopk"):
        spec = SAETrainingSpec(architecture=architecture, expansion=EXPANSION, k=K, l1_coefficient=0.5, lr=5e-3,
                               training_tokens=TRAIN_STEPS * BATCH_SIZE, batch_size=BATCH_SIZE, seed=0)  # fmt: skip
        paths[architecture] = root / architecture
        train_sae(planted.cache, spec, paths[architecture], progress=False)
    return paths


@pytest.mark.parametrize("architecture", ["topk", "relu", "batchtopk"])
def test_reader_reproduces_sae_lens_on_every_trained_architecture(
    architecture: str, trained: dict[str, Path], planted: Planted
) -> None:
    result = _agreement(trained[architecture], planted.heldout)
    assert result["codes_diff"] <= TOLERANCE and result["decode_diff"] <= TOLERANCE, result
    active = (result["codes"] > 0).sum(axis=1)
    assert active.mean() > 0.5  # the SAE fires: agreeing on all-zero codes would prove nothing
    if architecture == "topk":
        assert active.max() <= K
    reference, light = result["reference"], result["light"]
    # the project's names agree (BatchTopK is saved as JumpReLU; the metadata says how it was trained)
    assert sae_architecture(light) == sae_architecture(reference) == architecture
    assert light.cfg.architecture() == reference.cfg.architecture()
    np.testing.assert_array_equal(decoder_directions(light), decoder_directions(reference))
    # the project's row encoder gives the same codes through either object
    np.testing.assert_allclose(encode_rows(light, planted.heldout[:1000]), encode_rows(reference, planted.heldout[:1000]),
                               rtol=0, atol=TOLERANCE)  # fmt: skip


def _random_weights(sae: SAE[Any], seed: int) -> SAE[Any]:
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for parameter in sae.parameters():
            parameter.copy_(torch.randn(parameter.shape, generator=generator) * 0.5)
    return sae


def _inference_variants(d_in: int = 16, d_sae: int = 48) -> dict[str, SAE[Any]]:
    topk = _random_weights(TopKSAE(TopKSAEConfig(d_in=d_in, d_sae=d_sae, k=6, rescale_acts_by_decoder_norm=True)), 0)
    with torch.no_grad():  # unequal decoder norms: the rescaling changes the winners
        topk.W_dec.mul_(torch.linspace(0.2, 3.0, d_sae)[:, None])
    unshifted = _random_weights(StandardSAE(StandardSAEConfig(d_in=d_in, d_sae=d_sae, apply_b_dec_to_input=False)), 1)
    jumprelu = _random_weights(JumpReLUSAE(JumpReLUSAEConfig(d_in=d_in, d_sae=d_sae)), 2)
    with torch.no_grad():
        jumprelu.threshold.copy_(torch.linspace(0.0, 2.0, d_sae))
    return {"topk_rescaled": topk, "standard_unshifted": unshifted, "jumprelu": jumprelu}


@pytest.mark.parametrize("variant", ["topk_rescaled", "standard_unshifted", "jumprelu"])
def test_reader_reproduces_sae_lens_on_the_inference_variants(variant: str, tmp_path: Path) -> None:
    sae = _inference_variants()[variant]
    sae.save_model(str(tmp_path / variant))
    rows = np.random.default_rng(3).normal(size=(2000, 16)).astype(np.float32)
    result = _agreement(tmp_path / variant, rows)
    assert result["codes_diff"] <= TOLERANCE and result["decode_diff"] <= TOLERANCE, result
    # the detail each variant exists for changes the codes (so ignoring it would fail the comparison)
    x = torch.from_numpy(rows)
    with torch.no_grad():
        plain = (x - sae.b_dec) @ sae.W_enc + sae.b_enc
        if variant == "topk_rescaled":
            unscaled_winners = torch.topk(plain, 6, dim=-1).indices.sort(dim=-1).values
            winners = torch.topk(plain * sae.W_dec.norm(dim=-1), 6, dim=-1).indices.sort(dim=-1).values
            assert (unscaled_winners != winners).any(dim=-1).float().mean() > 0.5
        elif variant == "standard_unshifted":
            assert (plain.relu().numpy() != result["codes"]).any()
        else:
            cut = (plain > 0) & (plain <= sae.threshold)
            assert cut.float().mean() > 0.1


def test_file_names_are_sae_lens_own() -> None:
    assert (checkpoint.SAE_CFG_FILENAME, checkpoint.SAE_WEIGHTS_FILENAME) == (SAE_CFG_FILENAME, SAE_WEIGHTS_FILENAME)


def _one_line(error: pytest.ExceptionInfo[InputError]) -> str:
    message = str(error.value)
    assert "\n" not in message
    return message


def _edited_cfg(source: Path, target: Path, **changes: Any) -> Path:
    shutil.copytree(source, target)
    cfg = json.loads((target / SAE_CFG_FILENAME).read_text())
    cfg.update(changes)
    (target / SAE_CFG_FILENAME).write_text(json.dumps(cfg))
    return target


def test_unusable_checkpoints_are_refused_in_one_line(tmp_path: Path, trained: dict[str, Path]) -> None:
    source = trained["topk"]
    with pytest.raises(InputError, match="does not exist") as error:
        read_checkpoint(tmp_path / "nowhere")
    _one_line(error)
    partial = tmp_path / "partial"
    shutil.copytree(source, partial)
    (partial / SAE_WEIGHTS_FILENAME).unlink()
    with pytest.raises(InputError, match=f"missing {SAE_WEIGHTS_FILENAME}") as error:
        read_checkpoint(partial)
    _one_line(error)
    corrupt = tmp_path / "corrupt"
    shutil.copytree(source, corrupt)
    (corrupt / SAE_WEIGHTS_FILENAME).write_bytes(b"garbage")
    with pytest.raises(InputError, match="cannot read it") as error:
        read_checkpoint(corrupt)
    _one_line(error)
    cases = {
        "architecture": ("gated", "'architecture' = 'gated'; expected one of"),
        "normalize_activations": ("layer_norm", "'normalize_activations' = 'layer_norm'"),
        "reshape_activations": ("hook_z", "'reshape_activations' = 'hook_z'"),
        "k": (0, "'k' = 0; expected an integer in"),
    }
    for key, (value, message) in cases.items():
        with pytest.raises(InputError, match=message) as error:
            read_checkpoint(_edited_cfg(source, tmp_path / key, **{key: value}))
        _one_line(error)


def test_width_and_architecture_guardrails(trained: dict[str, Path]) -> None:
    light = read_checkpoint(trained["relu"], expected_d_in=D_IN, allowed_architectures=["relu", "topk"])
    assert isinstance(light, SaeCheckpoint) and light.cfg.d_sae == EXPANSION * D_IN
    with pytest.raises(InputError, match=f"d_in={D_IN} does not match the activation cache width d=64") as error:
        read_checkpoint(trained["relu"], expected_d_in=64)
    _one_line(error)
    with pytest.raises(InputError, match="architecture 'batchtopk' is not one this stage was asked for") as error:
        read_checkpoint(trained["batchtopk"], allowed_architectures=["topk"])
    _one_line(error)
