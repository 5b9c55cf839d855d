"""Feature-circuit faithfulness: planted nodes (model-free) and a tiny HookedTransformer with an exact SAE."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
import torch

from sae_difficulty.evals import circuit as circ
from sae_difficulty.modalities.llm.backbone import Backbone
from sae_difficulty.utils.errors import InputError
from tests.evals.schema_checks import assert_schema_accepts
from tests.modalities.llm.test_patching import make_sae

torch.set_num_threads(1)

# --------------------------------------------------------------------------- model-free core

N_EXAMPLES, N_NODES = 300, 200
PLANTED = np.array([3, 17, 42, 88, 120, 150, 199])


def planted_problem(seed: int = 0):
    """Codes at the behaviour's positions: the 7 planted nodes fire ~3x their background mean.

    metric = codes'[:, planted] @ w, with unkept nodes set to their background mean (1).
    Returns (attribution computed from the data, evaluate_kept, ground-truth weights).
    """
    rng = np.random.default_rng(seed)
    codes = rng.exponential(1.0, size=(N_EXAMPLES, N_NODES))
    codes[:, PLANTED] = rng.exponential(3.0, size=(N_EXAMPLES, PLANTED.size))
    background_mean = np.ones(N_NODES)
    weights = np.zeros(N_NODES)
    weights[PLANTED] = np.linspace(1.0, 2.0, PLANTED.size)
    baseline = rng.normal(size=N_EXAMPLES)  # per-example offset the nodes do not explain

    def evaluate_kept(kept: np.ndarray) -> np.ndarray:
        return baseline + np.where(kept, codes, background_mean) @ weights

    # attribution patching on a linear metric: (mean − code) · ∂metric/∂code, averaged over examples
    attribution = ((background_mean - codes) * weights).mean(axis=0)
    return attribution, evaluate_kept


def test_planted_circuit_is_recovered_and_beats_random_sets():
    attribution, evaluate_kept = planted_problem()
    curve = circ.faithfulness_curve(attribution, evaluate_kept, ks=(3, 7, 20), n_random=10, n_boot=300, seed=1)
    by_k = curve.set_index("k")
    assert list(curve.columns) == list(circ.CURVE_COLUMNS)
    assert by_k.loc[7, "faithfulness_top"] == pytest.approx(1.0, abs=1e-9)  # all 7 planted nodes kept
    assert 0.2 < by_k.loc[3, "faithfulness_top"] < 0.8
    assert by_k.loc[20, "faithfulness_top"] == pytest.approx(1.0, abs=1e-9)
    # a random 7-set holds 7 * 7/200 ≈ 0.25 planted nodes on average
    assert by_k.loc[7, "faithfulness_random_mean"] < 0.25 and by_k.loc[7, "faithfulness_random_sd"] > 0
    for k in (3, 7, 20):
        row = by_k.loc[k]
        assert row["gap"] == pytest.approx(row["faithfulness_top"] - row["faithfulness_random_mean"])
        assert 0 < row["gap_ci_low"] <= row["gap"] <= row["gap_ci_high"]


def test_ranking_is_by_magnitude_with_ties_by_index():
    assert circ.rank_nodes(np.array([0.5, -2.0, 0.5, 1.0, -0.5])).tolist() == [1, 3, 0, 2, 4]


def test_curve_is_seeded_and_deterministic():
    attribution, evaluate_kept = planted_problem(seed=3)
    first = circ.faithfulness_curve(attribution, evaluate_kept, ks=(5,), n_random=4, n_boot=100, seed=7)
    again = circ.faithfulness_curve(attribution, evaluate_kept, ks=(5,), n_random=4, n_boot=100, seed=7)
    other = circ.faithfulness_curve(attribution, evaluate_kept, ks=(5,), n_random=4, n_boot=100, seed=8)
    assert first.equals(again) and not first.equals(other)


def test_a_metric_that_ignores_every_node_is_refused():
    attribution, _ = planted_problem()
    constant = np.random.default_rng(0).normal(size=N_EXAMPLES)
    with pytest.raises(InputError, match="does not depend on the nodes"):
        circ.faithfulness_curve(attribution, lambda kept: constant, ks=(7,))
    with pytest.raises(InputError, match=r"ks: expected circuit sizes in \[1, 200\]"):
        circ.faithfulness_curve(attribution, planted_problem()[1], ks=(500,))


def test_config_validation():
    config = circ.CircuitConfig.from_dict({"layers": [1, 0], "ks": [20, 5]})
    assert config.layers == (0, 1) and config.ks == (5, 20)
    with pytest.raises(InputError, match="unknown key"):
        circ.CircuitConfig.from_dict({"layers": [0], "k": [5]})
    with pytest.raises(InputError, match="sae_evals.circuit.ks: expected a non-empty list of distinct integers >= 1"):
        circ.CircuitConfig(layers=(0,), ks=(0, 5))
    with pytest.raises(InputError, match="sae_evals.circuit.n_random: expected an integer >= 1, got 0"):
        circ.CircuitConfig(layers=(0,), n_random=0)


# --------------------------------------------------------------------------- tiny model

D_MODEL, CTX, VOCAB = 16, 24, 40


@pytest.fixture(scope="module")
def tiny():
    """A random 2-layer HookedTransformer with peaked predictions, and greedy-generated windows.

    Greedy continuations are, by construction, the model's confident predictions: a
    behaviour it "does well". Random windows are not.
    """
    from transformer_lens import HookedTransformer, HookedTransformerConfig

    config = HookedTransformerConfig(
        n_layers=2, d_model=D_MODEL, n_ctx=CTX, d_head=8, n_heads=2, d_mlp=32, d_vocab=VOCAB,
        act_fn="gelu", normalization_type="LN", seed=0, device="cpu",
    )
    model = HookedTransformer(config).eval()
    with torch.no_grad():
        model.W_U.mul_(4.0)
    backbone = Backbone(model=model, tokenizer=SimpleNamespace(bos_token_id=0, eos_token_id=0), source="tiny", device="cpu")
    generator = torch.Generator().manual_seed(0)
    windows = torch.cat([torch.zeros(32, 1, dtype=torch.long), torch.randint(1, VOCAB, (32, 3), generator=generator)], dim=1)
    with torch.no_grad():
        while windows.shape[1] < CTX:
            windows = torch.cat([windows, model(windows)[:, -1].argmax(-1, keepdim=True)], dim=1)
    random_windows = torch.cat([torch.zeros(32, 1, dtype=torch.long), torch.randint(1, VOCAB, (32, CTX - 1), generator=generator)], dim=1)
    examples = circ.select_confident_examples(backbone, windows, min_probability=0.5)
    saes = {0: make_sae(D_MODEL, []), 1: make_sae(D_MODEL, [])}
    return SimpleNamespace(backbone=backbone, windows=windows, random_windows=random_windows, examples=examples, saes=saes)


def run_with_resid(backbone, examples, replacements):
    """Target log-probs with ``blocks.{L}.hook_resid_post`` at positions > 0 replaced by a fixed vector."""

    def replace(x, hook, vector):
        x = x.clone()
        x[:, 1:] = vector
        return x

    hooks = [(f"blocks.{layer}.hook_resid_post", lambda x, hook, v=vector: replace(x, hook, v)) for layer, vector in replacements.items()]
    with torch.no_grad():
        logits = backbone.model.run_with_hooks(examples.tokens, fwd_hooks=hooks)
    return circ.target_log_prob(logits, examples.position, examples.target).double().numpy()


def run_with_resid_shift(backbone, examples, layer, shift):
    """Target log-probs with ``shift`` added to ``blocks.{layer}.hook_resid_post`` at positions > 0."""

    def add(x, hook):
        x = x.clone()
        x[:, 1:] += shift
        return x

    with torch.no_grad():
        logits = backbone.model.run_with_hooks(examples.tokens, fwd_hooks=[(f"blocks.{layer}.hook_resid_post", add)])
    return circ.target_log_prob(logits, examples.position, examples.target).double().numpy()


def test_confident_examples_are_confident_and_correct(tiny):
    examples = tiny.examples
    assert len(examples) == 32  # every greedy window has a confident position
    with torch.no_grad():
        probs = torch.softmax(tiny.backbone.model(examples.tokens), dim=-1)
    rows = torch.arange(len(examples))
    assert bool((examples.position >= 1).all())
    assert torch.equal(examples.target, examples.tokens[rows, examples.position + 1])
    assert bool((probs[rows, examples.position, examples.target] >= 0.5).all())
    random_examples = circ.select_confident_examples(tiny.backbone, tiny.random_windows, min_probability=0.5)
    assert len(random_examples) < len(examples)
    assert len(circ.select_confident_examples(tiny.backbone, tiny.windows, 0.5, max_examples=5)) == 5


def test_keeping_every_feature_reproduces_the_clean_model(tiny):
    config = circ.CircuitConfig(layers=(0, 1))
    mean_codes = circ.mean_feature_codes(tiny.backbone, tiny.saes, tiny.examples, config)
    evaluate = circ.circuit_metric_fn(tiny.backbone, tiny.saes, tiny.examples, mean_codes, config)
    clean = circ.clean_metric(tiny.backbone, tiny.examples)
    np.testing.assert_allclose(evaluate(np.ones(4 * D_MODEL, dtype=bool)), clean, atol=1e-5)
    assert not np.allclose(evaluate(np.zeros(4 * D_MODEL, dtype=bool)), clean, atol=1e-2)


def test_the_error_term_keeps_an_imperfect_sae_faithful(tiny):
    # an always-on extra feature makes decode(encode(x)) = x + 0.5 * direction: an SAE error of −0.5 * direction
    direction = torch.nn.functional.normalize(torch.arange(1.0, D_MODEL + 1), dim=0) * 3.0
    saes = {0: make_sae(D_MODEL, [(0.5, direction)])}
    clean = circ.clean_metric(tiny.backbone, tiny.examples)
    all_kept = np.ones(2 * D_MODEL + 1, dtype=bool)
    spliced = {}
    for keep_error_term in (True, False):
        config = circ.CircuitConfig(layers=(0,), keep_error_term=keep_error_term)
        mean_codes = circ.mean_feature_codes(tiny.backbone, saes, tiny.examples, config)
        spliced[keep_error_term] = circ.circuit_metric_fn(tiny.backbone, saes, tiny.examples, mean_codes, config)(all_kept)
    np.testing.assert_allclose(spliced[True], clean, atol=1e-5)
    shifted = run_with_resid_shift(tiny.backbone, tiny.examples, 0, 0.5 * direction)
    np.testing.assert_allclose(spliced[False], shifted, atol=1e-5)
    assert np.abs(spliced[False] - clean).max() > 1e-2


def test_keeping_no_feature_is_the_mean_ablated_run(tiny):
    config = circ.CircuitConfig(layers=(0,), keep_error_term=False)
    mean_codes = circ.mean_feature_codes(tiny.backbone, tiny.saes, tiny.examples, config)
    evaluate = circ.circuit_metric_fn(tiny.backbone, tiny.saes, tiny.examples, mean_codes, config)
    # the exact SAE decodes its mean code to the mean residual over non-BOS positions
    with torch.no_grad():
        _, cache = tiny.backbone.model.run_with_cache(tiny.examples.tokens, names_filter="blocks.0.hook_resid_post")
    mean_residual = cache["blocks.0.hook_resid_post"][:, 1:].mean(dim=(0, 1))
    expected = run_with_resid(tiny.backbone, tiny.examples, {0: mean_residual})
    np.testing.assert_allclose(evaluate(np.zeros(2 * D_MODEL, dtype=bool)), expected, atol=1e-5)


def test_later_layers_see_the_modified_upstream(tiny):
    config = circ.CircuitConfig(layers=(0, 1))
    mean_codes = circ.mean_feature_codes(tiny.backbone, tiny.saes, tiny.examples, config)
    evaluate = circ.circuit_metric_fn(tiny.backbone, tiny.saes, tiny.examples, mean_codes, config)
    layer0_ablated = np.r_[np.zeros(2 * D_MODEL, dtype=bool), np.ones(2 * D_MODEL, dtype=bool)]
    mean_residual = torch.from_numpy(mean_codes[0][:D_MODEL] - mean_codes[0][D_MODEL:])
    expected = run_with_resid(tiny.backbone, tiny.examples, {0: mean_residual})
    np.testing.assert_allclose(evaluate(layer0_ablated), expected, atol=1e-5)


def test_attribution_tracks_the_actual_single_feature_ablation_effect(tiny):
    config = circ.CircuitConfig(layers=(0,))
    attribution, nodes, mean_codes = circ.sae_feature_attribution(tiny.backbone, tiny.saes, tiny.examples, config)
    assert nodes == [(0, f) for f in range(2 * D_MODEL)] and attribution.shape == (2 * D_MODEL,)
    evaluate = circ.circuit_metric_fn(tiny.backbone, tiny.saes, tiny.examples, mean_codes, config)
    full = evaluate(np.ones(len(nodes), dtype=bool)).mean()
    actual = np.array([evaluate(np.arange(len(nodes)) != i).mean() - full for i in range(len(nodes))])
    assert np.corrcoef(attribution, actual)[0, 1] > 0.7
    # the linear estimate is trustworthy for the large effects: same sign, same strongest feature
    strongest = np.argsort(-np.abs(actual))[:3]
    assert np.all(np.sign(attribution[strongest]) == np.sign(actual[strongest]))
    assert np.argmax(np.abs(attribution)) == strongest[0]
    # with a downstream SAE node too, layer-0 features keep their total effect (gradients pass through layer 1)
    both_layers, _, _ = circ.sae_feature_attribution(tiny.backbone, tiny.saes, tiny.examples, circ.CircuitConfig(layers=(0, 1)))
    np.testing.assert_allclose(both_layers[: 2 * D_MODEL], attribution, rtol=1e-4, atol=1e-7)
    assert np.abs(both_layers[2 * D_MODEL :]).max() > 1e-3


def test_run_circuit_faithfulness_result(tiny, tmp_path):
    config = circ.CircuitConfig(layers=(0, 1), ks=(2, 5, 20, 64), n_random=4, n_boot=200)
    result = circ.run_circuit_faithfulness(tiny.backbone, tiny.saes, tiny.examples, config)
    assert_schema_accepts(circ.CircuitOutput, result.to_dict())
    assert result.n_nodes == 4 * D_MODEL and result.n_examples == len(tiny.examples)
    assert result.full_metric == pytest.approx(result.clean_metric, abs=1e-6)
    assert result.empty_metric < result.full_metric - 0.1  # mean-ablating every feature hurts
    table = result.table().set_index("k")
    assert table.loc[64, "faithfulness_top"] == pytest.approx(1.0)  # every node kept
    assert [node["rank"] for node in result.to_dict()["top_nodes"]] == list(range(64))
    line = circ.headline(result)
    assert line["metric"] == "faithfulness_gap_top_minus_random_k20" and line["null"] == 0.0
    assert line["value"] == pytest.approx(table.loc[20, "gap"]) and "Marks et al. 2024" in line["claim"]
    assert circ.plot_faithfulness(result, tmp_path / "circuit.png").stat().st_size > 0
    again = circ.run_circuit_faithfulness(tiny.backbone, tiny.saes, tiny.examples, config)
    assert again.to_dict() == result.to_dict()
