"""Steering eval on a planted 1-layer LM: a known residual direction turns prose into code.

The planted model (all weights zero except those set below), vocabulary = BOS + 10
"prose" characters + 10 "code" characters, one character per token:

* attention is uniform (W_Q = W_K = 0) and copies each token's code-ness (embedding axis
  ``MEMORY_AXIS``) to ``RECALL_AXIS``, which raises every code logit by ``memory_gain``
  times the share of code tokens so far: code prompts stay code, prose prompts stay prose;
* ``CODE_AXIS`` (the planted steering direction) raises every code logit by ``code_gain``;
* prose logits have a bias (the model prefers prose) and read their own axes 3..12, so a
  random direction reshuffles prose tokens (fluency cost) but barely makes code.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from transformer_lens import HookedTransformer, HookedTransformerConfig

from sae_difficulty.evals import steering
from sae_difficulty.evals.steering import CodeLikenessClassifier, SteeringConfig
from sae_difficulty.modalities.llm.backbone import Backbone
from sae_difficulty.utils.errors import InputError
from sae_difficulty.utils.io import dumps
from tests.evals.schema_checks import assert_schema_accepts

torch.set_num_threads(1)

PROSE, CODE = "etaoinshrd", "(){}[]=:;_"
D_MODEL, CODE_AXIS, MEMORY_AXIS, RECALL_AXIS = 64, 0, 1, 2
PROSE_PROMPTS = ["there", "tenth", "shore", "tinted", "darted", "ashore", "heron", "nation"]
CODE_PROMPT = "(){}[]"


class CharTokenizer:
    """One token per character; id 0 is BOS = EOS = padding."""

    bos_token_id = eos_token_id = pad_token_id = 0
    vocab = ["<bos>", *PROSE, *CODE]
    index = {ch: i for i, ch in enumerate(vocab)}

    def __call__(self, text: str, add_special_tokens: bool = False) -> dict[str, list[int]]:
        return {"input_ids": [self.index[ch] for ch in text]}

    def decode(self, ids, skip_special_tokens: bool = False) -> str:
        return "".join(self.vocab[i] for i in ids if not (skip_special_tokens and i == 0))


CODE_IDS = [CharTokenizer.index[c] for c in CODE]
PROSE_IDS = [CharTokenizer.index[c] for c in PROSE]


class MajorityCode:
    """Duck-typed success judge: most characters are code characters."""

    def success(self, texts):
        return np.array([2 * sum(ch in CODE for ch in text) > len(text) for text in texts])


def planted_backbone(code_gain: float = 6.0, memory_gain: float = 4.0, prose_bias: float = 2.0, distortion: float = 8.0) -> Backbone:
    cfg = HookedTransformerConfig(
        n_layers=1, d_model=D_MODEL, n_ctx=64, d_head=4, n_heads=1, d_vocab=len(CharTokenizer.vocab), attn_only=True,
        normalization_type=None, act_fn="relu", positional_embedding_type="standard", device="cpu", seed=0,
    )
    model = HookedTransformer(cfg)
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.zero_()
        model.W_E[CODE_IDS, MEMORY_AXIS] = 1.0
        model.blocks[0].attn.W_V[0, MEMORY_AXIS, 0] = 1.0
        model.blocks[0].attn.W_O[0, 0, RECALL_AXIS] = 1.0
        model.W_U[RECALL_AXIS, CODE_IDS] = memory_gain
        model.W_U[CODE_AXIS, CODE_IDS] = code_gain
        model.b_U[PROSE_IDS] = prose_bias - 0.2 * torch.arange(len(PROSE_IDS), dtype=torch.float32)
        for j, token in enumerate(PROSE_IDS):
            model.W_U[3 + j, token] = distortion
    model.eval()
    return Backbone(model=model, tokenizer=CharTokenizer(), source="planted", device="cpu")


def axis(i: int) -> np.ndarray:
    vector = np.zeros(D_MODEL)
    vector[i] = 1.0
    return vector


def config(**overrides) -> SteeringConfig:
    values = dict(layer=0, coefficients=(0, 0.25, 0.5, 1, 2), n_new_tokens=8, samples_per_prompt=4, n_prompts=6, n_boot=200)
    return SteeringConfig(**{**values, **overrides})


@pytest.fixture(scope="module")
def backbone() -> Backbone:
    return planted_backbone()


@pytest.fixture(scope="module")
def result(backbone):
    # diff_of_means is a decoy here (a fixed unrelated direction): the planted "sae" one must win.
    decoy = np.random.default_rng(5).standard_normal(D_MODEL)
    return steering.run_steering(
        backbone, [*PROSE_PROMPTS, CODE_PROMPT], {"sae": axis(CODE_AXIS), "diff_of_means": decoy}, 1.0, MajorityCode(), config()
    )


def curve(result, method: str) -> np.ndarray:
    table = result.table()
    return table[table["method"] == method].sort_values("coefficient")["success_rate"].to_numpy()


def test_planted_direction_raises_success_with_coefficient(result):
    success = curve(result, "sae")
    assert success[0] <= 0.25 and success[-1] >= 0.9
    assert np.all(np.diff(success) >= -0.1)


def test_planted_direction_beats_random_at_matched_fluency(result):
    matched = {row["method"]: row for row in result.matched}
    assert matched["sae"]["success_rate"] >= 0.9 and matched["sae"]["coefficient"] > 0
    assert matched["sae"]["perplexity"] <= result.perplexity_ceiling
    assert matched["random"]["success_rate"] < 0.5
    versus_random = next(r for r in result.comparisons if (r["method_a"], r["method_b"]) == ("sae", "random"))
    assert versus_random["delta"] > 0.5 and versus_random["ci_low"] > 0


def test_headline_is_sae_minus_diff_of_means(result):
    head = steering.headline(result)
    matched = {row["method"]: row["success_rate"] for row in result.matched}
    assert head["value"] == pytest.approx(matched["sae"] - matched["diff_of_means"])
    assert head["ci_low"] > 0 and head["null"] == 0.0 and "AxBench" in head["claim"]


def test_coefficient_zero_is_the_scan_baseline(result):
    scan = {row["prompt_index"]: row["baseline_success"] for row in result.scan if row["selected"]}
    zero = [row for row in result.per_prompt if row["coefficient"] == 0.0]
    assert {row["method"] for row in zero} == set(result.methods)
    for row in zero:
        assert row["success_rate"] == scan[row["prompt_index"]]


def test_scan_excludes_a_prompt_without_headroom(result):
    code_row = next(row for row in result.scan if row["prompt"] == CODE_PROMPT)
    assert code_row["baseline_success"] > 0.5 and not code_row["selected"] and "no headroom" in code_row["reason"]
    kept = [row for row in result.scan if row["selected"]]
    assert len(kept) == 6 and all("leaves headroom" in row["reason"] for row in kept)


def test_scan_keeps_the_lowest_baseline_prompts_first(backbone):
    table = steering.scan_prompts(backbone, [*PROSE_PROMPTS, CODE_PROMPT], MajorityCode(), config(n_prompts=2, max_baseline_success=0.5))
    kept = table[table["selected"]]
    rest = table[~table["selected"] & (table["baseline_success"] <= 0.5)]
    assert len(kept) == 2 and kept["baseline_success"].max() <= rest["baseline_success"].min()
    with pytest.raises(InputError, match="at least 2"):
        steering.scan_prompts(backbone, [CODE_PROMPT, CODE_PROMPT + "=="], MajorityCode(), config())


def test_generation_is_seeded_and_independent_of_batching(backbone):
    ids = [[0, *CharTokenizer()(p)["input_ids"]] for p in PROSE_PROMPTS[:3]]
    first = steering.generate(backbone, ids, axis(CODE_AXIS), 0.25, config(), generator_seed=7)
    assert first == steering.generate(backbone, ids, axis(CODE_AXIS), 0.25, config(batch_size=1), generator_seed=7)
    assert first != steering.generate(backbone, ids, axis(CODE_AXIS), 0.25, config(), generator_seed=8)
    assert len(first) == 3 * 4 and all(len(row) == 8 for row in first)
    # The direction with coefficient 0 is exactly the unsteered model.
    assert steering.generate(backbone, ids, axis(CODE_AXIS), 0.0, config(), 7) == steering.generate(backbone, ids, None, 0.0, config(), 7)


def test_identical_directions_give_a_zero_paired_difference(backbone):
    # Weak coefficients leave success partial, so only shared random draws make the two runs agree exactly.
    weak = config(coefficients=(0, 0.125, 0.25), n_boot=50)
    run = steering.run_steering(
        backbone, PROSE_PROMPTS, {"sae": axis(CODE_AXIS), "diff_of_means": 3 * axis(CODE_AXIS)}, 1.0, MajorityCode(), weak
    )
    assert 0.1 < max(curve(run, "sae")) < 0.9
    head = steering.headline(run)
    assert (head["value"], head["ci_low"], head["ci_high"]) == (0.0, 0.0, 0.0)


def test_tight_fluency_budget_excludes_costly_coefficients(backbone):
    # Code continuations cost the unsteered model perplexity; a 10% budget admits none.
    directions = {"sae": axis(CODE_AXIS), "diff_of_means": np.random.default_rng(5).standard_normal(D_MODEL)}
    run = steering.run_steering(backbone, PROSE_PROMPTS, directions, 1.0, MajorityCode(), config(fluency_budget=0.1, n_boot=50))
    matched = {row["method"]: row for row in run.matched}
    assert matched["sae"]["coefficient"] == 0.0 and matched["diff_of_means"]["coefficient"] == 0.0
    assert max(curve(run, "sae")) >= 0.9  # the success was there, just not within the budget
    # Neither method steered within the budget: the headline must not pass for "on par".
    head = steering.headline(run)
    assert head["value"] == 0.0 and head["ci_low"] is None and head["ci_high"] is None


def test_matched_success_picks_best_within_budget():
    success = np.array([[0.0, 0.0], [0.5, 0.5], [1.0, 1.0]])
    log_ppl = np.log([[10.0, 10.0], [15.0, 15.0], [40.0, 40.0]])
    value, chosen = steering.matched_success(success, log_ppl, fluency_budget=1.0)
    assert (float(value), int(chosen)) == (0.5, 1)
    value, chosen = steering.matched_success(success, log_ppl, fluency_budget=3.0)
    assert (float(value), int(chosen)) == (1.0, 2)


def test_continuation_perplexity_is_unsteered_and_penalises_code(backbone):
    prompt = [0, *CharTokenizer()("there")["input_ids"]]
    prose, code = CharTokenizer()("eeee")["input_ids"], CharTokenizer()("(((_")["input_ids"]
    ppl = steering.continuation_perplexity(backbone, [prompt, prompt], [prose, code])
    with torch.no_grad():
        logits = backbone.model(torch.tensor([prompt]))[0, -1]
    expected_first = float(torch.exp(-torch.log_softmax(logits, -1)[prose[0]]))
    assert ppl[1] > 3 * ppl[0]
    assert ppl[0] == pytest.approx(expected_first, rel=1e-5)  # "eeee": every position sees the same prose-only context


def test_result_validates_and_is_deterministic(backbone, result, tmp_path):
    assert_schema_accepts(steering.SteeringOutput, result.to_dict())
    decoy = np.random.default_rng(5).standard_normal(D_MODEL)
    again = steering.run_steering(
        backbone, [*PROSE_PROMPTS, CODE_PROMPT], {"sae": axis(CODE_AXIS), "diff_of_means": decoy}, 1.0, MajorityCode(), config()
    )
    assert dumps(again.to_dict()) == dumps(result.to_dict())
    assert {row["method"] for row in result.examples} == {"sae", "diff_of_means", "random"}
    assert steering.plot_steering(result, tmp_path / "steering.png").stat().st_size > 0


def test_bad_inputs_are_one_line_errors(backbone):
    with pytest.raises(InputError, match="coefficients"):
        SteeringConfig(layer=0, coefficients=(0.5, 1.0))
    with pytest.raises(InputError, match="unknown key"):
        SteeringConfig.from_dict({"layer": 0, "coef": [0, 1]})
    assert SteeringConfig.from_dict({"layer": 0, "coefficients": [0, 1]}).coefficients == (0.0, 1.0)
    with pytest.raises(InputError, match="reserved"):
        steering.run_steering(backbone, PROSE_PROMPTS, {"random": axis(0)}, 1.0, MajorityCode(), config())
    with pytest.raises(InputError, match="d_model"):
        steering.run_steering(backbone, PROSE_PROMPTS, {"sae": np.ones(3)}, 1.0, MajorityCode(), config())
    with pytest.raises(InputError, match="out of range"):
        steering.run_steering(backbone, PROSE_PROMPTS, {"sae": axis(0)}, 1.0, MajorityCode(), config(layer=3))


PROSE_SENTENCES = [
    "The garden was quiet in the early morning, and the light came slowly over the hills.",
    "She wrote a long letter to her brother describing the journey across the mountains.",
    "Most of the villagers agreed that the harvest had been better than in previous years.",
    "A small boat drifted along the river while the children watched from the bridge.",
    "He explained that the meeting would begin after lunch and last for about two hours.",
    "Reading a good novel on a rainy afternoon is one of the simplest pleasures in life.",
] * 4
CODE_SNIPPETS = [
    "def mean(values):\n    total = sum(values)\n    return total / len(values) if values else 0.0\n",
    "for key, value in sorted(mapping.items()):\n    if value is None:\n        continue\n    out[key] = value\n",
    "class Point:\n    def __init__(self, x, y):\n        self.x, self.y = x, y\n",
    "import os\npath = os.path.join(root, name)\nwith open(path) as handle:\n    data = handle.read()\n",
    "try:\n    result = compute(a, b)\nexcept ValueError as exc:\n    raise RuntimeError(str(exc)) from exc\n",
    "items = [x * 2 for x in range(10) if x % 3 == 0]\nprint(items[-1], len(items))\n",
] * 4


def test_code_likeness_classifier_separates_prose_from_code():
    judge = CodeLikenessClassifier(chunk_chars=48).fit(PROSE_SENTENCES, CODE_SNIPPETS, seed=0)
    assert judge.heldout_accuracy >= 0.8
    fresh = ["The river rose after the storm and flooded the lower fields.", "if x > 0:\n    y = f(x)[0]\nreturn y"]
    assert judge.predict_proba(fresh)[0] < 0.5 < judge.predict_proba(fresh)[1]
    assert judge.success(fresh).tolist() == [False, True]


def test_code_likeness_classifier_refuses_a_judge_that_cannot_tell():
    with pytest.raises(InputError, match="held-out accuracy"):
        CodeLikenessClassifier(chunk_chars=48).fit(PROSE_SENTENCES[:12], PROSE_SENTENCES[12:], seed=0)
    with pytest.raises(InputError, match="before predict_proba"):
        CodeLikenessClassifier().predict_proba(["x = 1"])
