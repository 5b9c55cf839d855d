"""Encode fidelity for EleutherAI sparsify's save format (cfg.json + sae.safetensors per hookpoint folder).

The dictionaries are written by sparsify itself (the PyPI package ``eai-sparsify``, a test
extra): ``SparseCoder.save_to_disk`` is the format, not a layout written by hand here.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from sae_difficulty.evals import encode_fidelity as ef
from sae_difficulty.utils.errors import InputError

sparsify = pytest.importorskip("sparsify", reason="eai-sparsify (test extra) is not installed")

D_IN, K = 12, 4
torch.set_num_threads(1)


def saved_sparsify_sae(path, seed: int = 0):
    """A sparsify TopK SAE with random weights and a large decoder bias, saved by sparsify to ``path``."""
    torch.manual_seed(seed)
    coder = sparsify.SparseCoder(D_IN, sparsify.SparseCoderConfig(expansion_factor=4, k=K))
    with torch.no_grad():
        coder.encoder.bias.normal_(0.0, 0.1)
        coder.b_dec.copy_(2.0 + torch.randn(D_IN))  # residual streams sit far from the origin: the shift matters
    coder.save_to_disk(path)
    return coder


def activation_rows(seed: int, n: int = 256) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return (2.0 + rng.normal(size=(n, D_IN))).astype(np.float32)


def test_sparsify_folder_loads_and_reproduces_sparsify_codes(tmp_path):
    folder = tmp_path / "layers.1"
    coder = saved_sparsify_sae(folder)
    assert sorted(p.name for p in folder.iterdir()) == ["cfg.json", "sae.safetensors"]
    sae = ef.load_external_sae(folder, "sparsify")
    assert (sae.cfg.d_in, sae.cfg.d_sae, sae.cfg.k) == (D_IN, 4 * D_IN, K)
    rows = activation_rows(1)
    result = ef.require_encode_fidelity(sae, folder, "sparsify", rows)
    assert result.passed and result.max_abs_diff < 1e-5
    # against sparsify's own encode/decode, not only the numpy reference
    with torch.no_grad():
        x = torch.from_numpy(rows)
        encoded = coder.encode(x)
        dense = torch.zeros(len(rows), coder.num_latents).scatter(1, encoded.top_indices, encoded.top_acts)
        np.testing.assert_allclose(sae.encode(x).numpy(), dense.numpy(), atol=1e-5)
        np.testing.assert_allclose(sae.decode(dense).numpy(), coder.decode(encoded.top_acts, encoded.top_indices).numpy(), atol=1e-5)


def test_dropped_decoder_bias_fails_the_fidelity_check(tmp_path):
    folder = tmp_path / "layers.1"
    saved_sparsify_sae(folder)

    def dropping_the_decoder_bias(path, device="cpu", cfg_overrides=None):
        cfg, weights = ef.sparsify_disk_loader(path, device, cfg_overrides)
        return cfg, {**weights, "b_dec": torch.zeros_like(weights["b_dec"])}

    from sae_lens import SAE

    wrong = SAE.load_from_disk(folder, converter=dropping_the_decoder_bias).eval()
    with pytest.raises(InputError, match=r"loaded codes differ.*\(b_dec\)"):
        ef.require_encode_fidelity(wrong, folder, "sparsify", activation_rows(2))


def test_unsupported_sparsify_variants_are_refused_with_one_line(tmp_path):
    folder = tmp_path / "transcoder"
    saved_sparsify_sae(folder)
    cfg = json.loads((folder / "cfg.json").read_text())
    (folder / "cfg.json").write_text(json.dumps({**cfg, "transcode": True}))
    with pytest.raises(InputError, match=r"transcode=True is unsupported"):
        ef.load_external_sae(folder, "sparsify")
    (folder / "sae.safetensors").unlink()
    with pytest.raises(InputError, match=r"missing sae.safetensors"):
        ef.source_codes(folder, "sparsify", activation_rows(3))
