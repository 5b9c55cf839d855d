"""SAE vs skip-transcoder: planted synthetic MLP, exact splices on a tiny ReLU LM, schema, persistence."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
import torch
from sae_lens import StandardSAE, StandardSAEConfig
from sae_lens.saes.transcoder import SkipTranscoder, SkipTranscoderConfig

from sae_difficulty.evals import transcoder as tc
from sae_difficulty.modalities.llm.backbone import Backbone
from sae_difficulty.utils.errors import InputError
from sae_difficulty.utils.io import dumps
from tests.evals.schema_checks import assert_schema_accepts

torch.set_num_threads(1)

D = 16  # synthetic model width
N_ATOMS = 16
THRESHOLD = 1.64  # |z| beyond this fires: about 10 % of rows per atom
INPUT_SCALE = 3.0  # raw mlp_in is 3 x the unit-variance drivers, so the folding of scales is exercised


# --------------------------------------------------------------------------- planted synthetic MLP


def planted_mlp(n_rows: int, rows_seed: int, map_seed: int = 0):
    """mlp_out = A @ mlp_in + sum_j g_j(mlp_in) d_j with sparse, symmetric nonlinear g_j.

    g_j = 5 * (|z_j| - t)_+ with z_j = e_j . mlp_in / 3 is even in z_j, so it has no linear
    part: the best linear map from mlp_in to mlp_out is exactly A, and the rest can only
    be explained by sparse features (two ReLUs per atom, one for each sign).
    """
    rng = np.random.default_rng(map_seed)
    linear = rng.standard_normal((D, D)) / (np.sqrt(D) * INPUT_SCALE)  # linear part of unit variance per dim
    drivers = rng.standard_normal((N_ATOMS, D))
    drivers /= np.linalg.norm(drivers, axis=1, keepdims=True)
    atoms = rng.standard_normal((N_ATOMS, D))
    atoms /= np.linalg.norm(atoms, axis=1, keepdims=True)
    z = np.random.default_rng([map_seed, rows_seed]).standard_normal((n_rows, D))
    mlp_in = INPUT_SCALE * z
    codes = 5.0 * np.maximum(np.abs(z @ drivers.T) - THRESHOLD, 0.0)
    mlp_out = mlp_in @ linear.T + codes @ atoms
    return mlp_in.astype(np.float32), mlp_out.astype(np.float32), linear


def explained_variance(target: np.ndarray, recon: np.ndarray) -> float:
    target = target.astype(np.float64)
    return 1.0 - float(((target - recon) ** 2).sum() / ((target - target.mean(0)) ** 2).sum())


SYNTH_CONFIG = tc.TranscoderComparisonConfig(layer=0, expansion=4, l1_coefficient=0.01, lr=1e-2, training_tokens=256 * 800, batch_size=256)


@pytest.fixture(scope="module")
def synthetic_pair():
    mlp_in, mlp_out, linear = planted_mlp(8192, rows_seed=0)
    sae, transcoder, training = tc.train_pair(mlp_in, mlp_out, SYNTH_CONFIG)
    return sae, transcoder, training, linear


def test_skip_transcoder_learns_the_planted_map_and_the_sae_its_target(synthetic_pair):
    sae, transcoder, training, linear = synthetic_pair
    held_in, held_out, _ = planted_mlp(4096, rows_seed=1)  # same map, fresh rows
    with torch.no_grad():
        transcoder_recon = transcoder(torch.from_numpy(held_in)).numpy()
        sae_recon = sae.decode(sae.encode(torch.from_numpy(held_out))).numpy()
    linear_only = explained_variance(held_out, held_in @ linear.T)
    transcoder_ev = explained_variance(held_out, transcoder_recon)
    # the linear part alone leaves the sparse part unexplained; the transcoder must get most of it
    assert linear_only < 0.65
    assert transcoder_ev > 0.97 and transcoder_ev > linear_only + 0.3
    assert explained_variance(held_out, sae_recon) > 0.9
    # W_skip (folded back to raw units) is the planted linear map; zero W_skip would be error 1
    relative_error = np.linalg.norm(transcoder.W_skip.detach().numpy() - linear) / np.linalg.norm(linear)
    assert relative_error < 0.1
    for name in ("sae", "skip_transcoder"):
        assert training[name]["final_loss"] < 0.5 * training[name]["initial_loss"]
    assert training["steps"] == 800 and training["tokens"] == 256 * 800 and training["d_sae"] == 4 * D


def test_training_is_deterministic_and_seeded():
    mlp_in, mlp_out, _ = planted_mlp(1024, rows_seed=2)
    config = tc.TranscoderComparisonConfig(layer=0, expansion=2, training_tokens=256 * 20, batch_size=256, seed=3)
    first = tc.train_pair(mlp_in, mlp_out, config)
    second = tc.train_pair(mlp_in, mlp_out, config)
    other_seed = tc.train_pair(mlp_in, mlp_out, tc.TranscoderComparisonConfig.from_dict({**config.__dict__, "seed": 4}))
    for index in (0, 1):
        state_a, state_b = first[index].state_dict(), second[index].state_dict()
        assert state_a.keys() == state_b.keys()
        assert all(torch.equal(state_a[key], state_b[key]) for key in state_a)
        assert not torch.equal(state_a["W_dec"], other_seed[index].state_dict()["W_dec"])
    assert dumps(first[2]) == dumps(second[2])
    # same recipe: both models start from one dictionary, so the seed sets the pair's init jointly
    assert first[0].cfg.d_sae == first[1].cfg.d_sae == 2 * D


# --------------------------------------------------------------------------- tiny ReLU LM with exact splices


def tiny_relu_backbone() -> Backbone:
    """A 2-layer Pythia-like (parallel attention + MLP, rotary, LN) ReLU HookedTransformer, BOS id 0.

    The layer-0 MLP output is scaled up so that zeroing it moves the predictions, and the
    unembedding is scaled so that predictions are peaked.
    """
    from transformer_lens import HookedTransformer, HookedTransformerConfig

    cfg = HookedTransformerConfig(
        n_layers=2,
        d_model=D,
        n_heads=2,
        d_head=8,
        d_mlp=2 * D,
        d_vocab=40,
        n_ctx=16,
        act_fn="relu",
        normalization_type="LN",
        parallel_attn_mlp=True,
        positional_embedding_type="rotary",
        rotary_dim=8,
        seed=0,
    )
    model = HookedTransformer(cfg, move_to_device=False)
    with torch.no_grad():
        for name, param in model.named_parameters():
            if name.startswith("blocks.") and ".ln" in name:
                # non-trivial LN affine, so the transcoder must fold it
                generator = torch.Generator().manual_seed(len(name))
                param.add_(0.3 * torch.randn(param.shape, generator=generator))
        model.blocks[0].mlp.W_out.mul_(8.0)
        model.blocks[0].mlp.b_in.add_(0.1)
        model.unembed.W_U.mul_(10.0)
    model.eval()
    return Backbone(model=model, tokenizer=SimpleNamespace(bos_token_id=0, eos_token_id=0), source="tiny-relu", device="cpu")


@torch.no_grad()
def greedy_windows(backbone: Backbone, n: int, length: int, seed: int) -> torch.Tensor:
    """BOS + one random token + the clean model's greedy continuation: the clean model is near-optimal on them."""
    generator = torch.Generator().manual_seed(seed)
    tokens = torch.cat([torch.zeros(n, 1, dtype=torch.long), torch.randint(1, 40, (n, 1), generator=generator)], dim=1)
    while tokens.shape[1] < length:
        next_token = backbone.model(tokens)[:, -1].argmax(-1, keepdim=True)
        tokens = torch.cat([tokens, next_token], dim=1)
    return tokens


def exact_sae(d: int, decoder_scale: float = 1.0) -> StandardSAE:
    """Codes [relu(x), relu(-x)], decoder [I; -I] (times ``decoder_scale``): exact when the scale is 1."""
    sae = StandardSAE(StandardSAEConfig(d_in=d, d_sae=2 * d))
    eye = torch.eye(d)
    with torch.no_grad():
        sae.W_enc.copy_(torch.cat([eye, -eye], dim=1))
        sae.W_dec.copy_(decoder_scale * torch.cat([eye, -eye], dim=0))
        sae.b_enc.zero_()
        sae.b_dec.zero_()
    return sae.eval()


def exact_transcoder(backbone: Backbone, layer: int, decoder_scale: float = 1.0) -> SkipTranscoder:
    """The MLP itself as a SkipTranscoder on ``ln2.hook_normalized``: LN affine folded into the encoder."""
    block = backbone.model.blocks[layer]
    mlp, ln2 = block.mlp, block.ln2
    d_model, d_mlp = mlp.W_in.shape
    transcoder = SkipTranscoder(SkipTranscoderConfig(d_in=d_model, d_sae=d_mlp, d_out=d_model, apply_b_dec_to_input=False))
    with torch.no_grad():
        transcoder.W_enc.copy_(ln2.w[:, None] * mlp.W_in)
        transcoder.b_enc.copy_(ln2.b @ mlp.W_in + mlp.b_in)
        transcoder.W_dec.copy_(decoder_scale * mlp.W_out)
        transcoder.b_dec.copy_(decoder_scale * mlp.b_out)
        transcoder.W_skip.zero_()
    return transcoder.eval()


SPLICE_CONFIG = tc.TranscoderComparisonConfig(layer=0, n_boot=200, splice_sequences=12, context_length=12)


@pytest.fixture(scope="module")
def lm_setup():
    backbone = tiny_relu_backbone()
    windows = greedy_windows(backbone, 12, 12, seed=0)
    mlp_in, mlp_out = tc.mlp_io(backbone, 0, windows, batch_size=5)
    exact = tc.evaluate_pair(exact_sae(D), exact_transcoder(backbone, 0), mlp_in, mlp_out, backbone, windows, SPLICE_CONFIG)
    return backbone, windows, mlp_in, mlp_out, exact


def test_mlp_io_rows_are_the_hooks_at_non_bos_positions(lm_setup):
    backbone, windows, mlp_in, mlp_out, _ = lm_setup
    assert mlp_in.shape == mlp_out.shape == (12 * 11, D) and mlp_in.dtype == np.float32
    _, cache = backbone.model.run_with_cache(windows)
    assert np.allclose(mlp_in[11:22], cache["blocks.0.ln2.hook_normalized"][1, 1:].numpy(), atol=1e-6)
    assert np.allclose(mlp_out[:11], cache["blocks.0.hook_mlp_out"][0, 1:].numpy(), atol=1e-6)


def test_exact_models_splice_for_free_and_zero_ablation_costs(lm_setup):
    _, _, _, _, exact = lm_setup
    for name in tc.MODEL_NAMES:
        stats = exact.models[name]
        assert stats["explained_variance"] > 1 - 1e-6
        assert abs(stats["delta_loss"]) < 1e-4
    assert exact.loss_zero_ablation - exact.loss_clean > 0.1
    assert abs(exact.differences["delta_loss"]["value"]) < 1e-4
    assert exact.models["sae"]["l0"] == pytest.approx(D, abs=1.0)  # one of relu(x), relu(-x) per dimension


def test_imperfect_models_cost_loss_so_the_splice_is_real(lm_setup):
    backbone, windows, mlp_in, mlp_out, exact = lm_setup
    halved = tc.evaluate_pair(
        exact_sae(D, 0.5), exact_transcoder(backbone, 0, 0.5), mlp_in, mlp_out, backbone, windows, SPLICE_CONFIG
    )
    for name in tc.MODEL_NAMES:
        assert halved.models[name]["explained_variance"] < 0.9
        assert abs(halved.models[name]["delta_loss"]) > 0.02
    # both halve the true MLP output, one from mlp_out and one from the captured ln2 input: same loss
    assert halved.models["sae"]["loss_spliced"] == pytest.approx(halved.models["skip_transcoder"]["loss_spliced"], abs=1e-4)
    assert halved.loss_clean == exact.loss_clean


def test_result_schema_headline_table_plot_and_bit_identical_json(lm_setup, tmp_path):
    backbone, windows, mlp_in, mlp_out, exact = lm_setup
    sae, transcoder, training = tc.train_pair(
        mlp_in, mlp_out, tc.TranscoderComparisonConfig(layer=0, expansion=2, training_tokens=64 * 30, batch_size=64)
    )
    result = tc.evaluate_pair(sae, transcoder, mlp_in, mlp_out, backbone, windows, SPLICE_CONFIG, training)
    again = tc.evaluate_pair(sae, transcoder, mlp_in, mlp_out, backbone, windows, SPLICE_CONFIG, training)
    for res in (exact, result):
        assert_schema_accepts(tc.TranscoderComparisonOutput, res.to_dict())
    assert dumps(result.to_dict()) == dumps(again.to_dict())
    ev = result.differences["explained_variance"]
    assert ev["ci_low"] <= ev["value"] <= ev["ci_high"]
    assert ev["value"] == pytest.approx(
        result.models["skip_transcoder"]["explained_variance"] - result.models["sae"]["explained_variance"]
    )
    head = tc.headline(result)
    assert head["value"] == ev["value"] and head["null"] == 0.0 and "Paulo" in head["claim"]
    table = result.table()
    assert set(table["model"]) == {"sae", "skip_transcoder", "zero_ablation", "difference"}
    assert len(table) == 2 * 6 + 1 + 3
    plot = tc.plot_transcoder_comparison(result, tmp_path / "fig.png")
    assert plot.read_bytes()[:4] == b"\x89PNG"


# --------------------------------------------------------------------------- inputs and persistence


@pytest.mark.parametrize(
    "values",
    [
        {"layer": -1},
        {"layer": 0, "expansion": 0},
        {"layer": 0, "l1_coefficient": -0.1},
        {"layer": 0, "lr": 0.0},
        {"layer": 0, "training_tokens": 10, "batch_size": 256},
        {"layer": 0, "context_length": 1},
        {"layer": 0, "n_boot": 0},
        {"layer": 0, "batch_size": True},
        {"layer": 0, "l1": 0.1},
        {"expansion": 4},
    ],
)
def test_bad_config_is_a_one_line_input_error(values):
    with pytest.raises(InputError) as info:
        tc.TranscoderComparisonConfig.from_dict(values)
    assert "\n" not in str(info.value)


def test_mismatched_inputs_are_rejected(lm_setup):
    backbone, windows, mlp_in, mlp_out, _ = lm_setup
    sae, transcoder = exact_sae(D), exact_transcoder(backbone, 0)
    with pytest.raises(InputError, match="sae"):
        tc.evaluate_pair(transcoder, transcoder, mlp_in, mlp_out, backbone, windows, SPLICE_CONFIG)
    with pytest.raises(InputError, match="mlp_in_heldout"):
        tc.evaluate_pair(sae, transcoder, mlp_in[:-1], mlp_out, backbone, windows, SPLICE_CONFIG)
    with pytest.raises(InputError, match="BOS"):
        tc.evaluate_pair(sae, transcoder, mlp_in, mlp_out, backbone, windows[:, 1:], SPLICE_CONFIG)
    with pytest.raises(InputError, match="out of range"):
        tc.mlp_io(backbone, 2, windows, batch_size=4)
    with pytest.raises(InputError, match="rows"):
        tc.train_pair(mlp_in, mlp_out[:-1], SPLICE_CONFIG)


def test_save_load_round_trip_reproduces_both_models(synthetic_pair, tmp_path):
    sae, transcoder, _, _ = synthetic_pair
    tc.save_pair(sae, transcoder, tmp_path / "pair")
    loaded_sae, loaded_transcoder = tc.load_pair(tmp_path / "pair")
    assert type(loaded_sae) is StandardSAE and type(loaded_transcoder) is SkipTranscoder
    mlp_in, mlp_out, _ = planted_mlp(256, rows_seed=5)
    x, y = torch.from_numpy(mlp_in), torch.from_numpy(mlp_out)
    with torch.no_grad():
        assert torch.equal(loaded_sae.encode(y), sae.encode(y))
        assert torch.equal(loaded_transcoder.encode(x), transcoder.encode(x))
        assert torch.equal(loaded_transcoder(x), transcoder(x))  # W_skip came back too
    with pytest.raises(InputError, match="cfg.json"):
        tc.load_pair(tmp_path / "missing")
