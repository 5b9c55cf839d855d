"""Encode fidelity: an SAE converted from an external format reproduces its source's codes."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from sae_lens import SAE, StandardSAE, StandardSAEConfig, TopKSAE, TopKSAEConfig

from sae_difficulty.evals import encode_fidelity as ef
from sae_difficulty.utils.errors import InputError
from tests.evals.schema_checks import assert_schema_accepts

torch.set_num_threads(1)

D_IN, D_SAE = 12, 40


def dictionary_learning_state(seed: int, topk: int | None = None) -> dict[str, torch.Tensor]:
    """A dictionary_learning AutoEncoder(TopK) state dict with a large, nonzero input bias."""
    generator = torch.Generator().manual_seed(seed)
    state = {
        "encoder.weight": torch.randn(D_SAE, D_IN, generator=generator) / D_IN**0.5,
        "encoder.bias": 0.1 * torch.randn(D_SAE, generator=generator),
        "decoder.weight": torch.randn(D_IN, D_SAE, generator=generator) / D_SAE**0.5,
    }
    shift = 2.0 + torch.randn(D_IN, generator=generator)
    if topk is None:
        state["bias"] = shift
    else:
        state["b_dec"] = shift
        state["k"] = torch.tensor(topk)
        state["threshold"] = torch.tensor(-1.0)
    return state


def activation_rows(seed: int, n: int = 256) -> np.ndarray:
    # centred on a point far from the origin, as residual streams are: the shift matters
    rng = np.random.default_rng(seed)
    return (2.0 + rng.normal(size=(n, D_IN))).astype(np.float32)


def test_dictionary_learning_relu_converts_and_reproduces_the_source(tmp_path):
    state = dictionary_learning_state(0)
    path = ef.save_dictionary_learning(state, tmp_path / "relu")
    sae = ef.load_external_sae(path.parent, "dictionary_learning")
    rows = activation_rows(1)

    result = ef.require_encode_fidelity(sae, path.parent, "dictionary_learning", rows)
    assert result.passed and result.max_abs_diff < 1e-5 and result.fraction_rows_matching == 1.0
    assert result.mean_active_jaccard == 1.0 and 0 < result.to_dict()["mean_l0_source"] < D_SAE
    # the decoder side converts too: decode(f) = decoder(f) + bias, as dictionary_learning decodes
    codes = sae.encode(torch.from_numpy(rows))
    expected = codes @ state["decoder.weight"].T + state["bias"]
    torch.testing.assert_close(sae.decode(codes), expected, atol=1e-5, rtol=1e-5)
    assert_schema_accepts(ef.EncodeFidelityOutput, result.to_dict())
    assert len(result.table()) == len(rows) and result.table()["matches"].all()


def test_reference_encoder_is_the_dictionary_learning_formula(tmp_path):
    state = dictionary_learning_state(3)
    path = ef.save_dictionary_learning(state, tmp_path / "ae.pt")
    rows = activation_rows(4, 32)
    encoder = torch.nn.Linear(D_IN, D_SAE)
    with torch.no_grad():
        encoder.weight.copy_(state["encoder.weight"])
        encoder.bias.copy_(state["encoder.bias"])
        expected = torch.relu(encoder(torch.from_numpy(rows) - state["bias"])).numpy()
    np.testing.assert_allclose(ef.source_codes(path, "dictionary_learning", rows), expected, atol=1e-5)


def test_dropped_decoder_bias_shift_is_refused_with_one_line(tmp_path):
    path = ef.save_dictionary_learning(dictionary_learning_state(0), tmp_path / "relu")

    def buggy_converter(file, device="cpu", cfg_overrides=None):
        cfg, weights = ef.dictionary_learning_disk_loader(file, device, cfg_overrides)
        return {**cfg, "apply_b_dec_to_input": False}, weights

    buggy = SAE.load_from_disk(path, converter=buggy_converter)
    rows = activation_rows(1)
    result = ef.check_encode_fidelity(buggy, path, "dictionary_learning", rows)
    assert not result.passed and result.max_abs_diff > 0.1 and result.mean_active_jaccard < 0.95
    with pytest.raises(InputError, match=r"b_dec") as raised:
        ef.require_encode_fidelity(buggy, path, "dictionary_learning", rows)
    message = str(raised.value)
    assert str(path) in message and "max abs diff" in message and "\n" not in message


def test_dictionary_learning_topk_converts_to_a_topk_sae(tmp_path):
    path = ef.save_dictionary_learning(dictionary_learning_state(5, topk=4), tmp_path / "topk")
    sae = ef.load_external_sae(path, "dictionary_learning")
    assert isinstance(sae, TopKSAE) and sae.cfg.k == 4
    result = ef.require_encode_fidelity(sae, path, "dictionary_learning", activation_rows(6))
    assert result.passed and result.table()["l0_source"].eq(4).all()


def hand_set_sae(kind: str, seed: int):
    generator = torch.Generator().manual_seed(seed)
    if kind == "standard":
        sae = StandardSAE(StandardSAEConfig(d_in=D_IN, d_sae=D_SAE))
    else:
        sae = TopKSAE(TopKSAEConfig(d_in=D_IN, d_sae=D_SAE, k=5))
    with torch.no_grad():
        sae.W_enc.copy_(torch.randn(D_IN, D_SAE, generator=generator) / D_IN**0.5)
        sae.b_enc.copy_(0.1 * torch.randn(D_SAE, generator=generator))
        sae.W_dec.copy_(torch.randn(D_SAE, D_IN, generator=generator))
        sae.b_dec.copy_(2.0 + torch.randn(D_IN, generator=generator))
    return sae.eval()


@pytest.mark.parametrize("kind", ["standard", "topk"])
def test_saelens_directory_round_trips(tmp_path, kind):
    directory = tmp_path / kind
    hand_set_sae(kind, 7).save_model(directory)
    sae = ef.load_external_sae(directory, "saelens")
    result = ef.require_encode_fidelity(sae, directory, "saelens", activation_rows(8), ef.EncodeFidelityConfig(n_rows=100))
    assert result.passed and result.n_rows == 100
    if kind == "topk":
        assert result.table()["l0_source"].eq(5).all()
    # the numpy reference really applies the shift: dropping it in the loaded SAE breaks agreement
    sae.cfg.apply_b_dec_to_input = False
    assert not ef.check_encode_fidelity(sae, directory, "saelens", activation_rows(8)).passed
    assert_schema_accepts(ef.EncodeFidelityOutput, result.to_dict())


def test_unsupported_normalization_and_format_are_refused(tmp_path):
    directory = tmp_path / "normalized"
    hand_set_sae("standard", 1).save_model(directory)
    cfg = json.loads((directory / "cfg.json").read_text())
    (directory / "cfg.json").write_text(json.dumps({**cfg, "normalize_activations": "expected_average_only_in"}))
    with pytest.raises(InputError, match="normalize_activations.*unsupported"):
        ef.source_codes(directory, "saelens", activation_rows(0, 4))
    with pytest.raises(InputError, match="format 'hf'"):
        ef.load_external_sae(directory, "hf")
    with pytest.raises(InputError, match="no checkpoint file"):
        ef.load_external_sae(tmp_path / "missing", "dictionary_learning")


def test_config_validation_headline_and_plot(tmp_path):
    with pytest.raises(InputError, match="min_match_fraction"):
        ef.EncodeFidelityConfig(min_match_fraction=0.0)
    with pytest.raises(InputError, match="unknown key"):
        ef.EncodeFidelityConfig.from_dict({"n_rows": 8, "tolerance": 1})
    config = ef.EncodeFidelityConfig.from_dict({"n_rows": 8, "atol": 1e-5})
    path = ef.save_dictionary_learning(dictionary_learning_state(2), tmp_path / "ae")
    sae = ef.load_external_sae(path, "dictionary_learning")
    result = ef.check_encode_fidelity(sae, path, "dictionary_learning", activation_rows(2), config)
    line = ef.headline(result)
    assert line["metric"] == "max_abs_code_difference" and line["value"] == result.max_abs_diff
    assert line["null"] is None and line["claim"] == ""
    assert ef.plot_encode_fidelity(result, tmp_path / "fidelity.png").stat().st_size > 0
