"""Model families beyond GPT-NeoX: a tiny random checkpoint of each, saved locally and loaded
through the project's loader, must reproduce the Hugging Face model's logits and residual stream.

Weights are redrawn at a scale where every component matters (default initializations are so
small that logits are nearly uniform and a wrong config could still pass); the Gemma-2 softcaps
are set low enough to bite and its sliding window shorter than the test sequence. Directory
names contain the family name on purpose: TransformerLens's own local-path config route
dispatches on "llama"/"gemma" in the path string and fails on such names.
"""

from __future__ import annotations

import pydoc_data.topics

import pytest
import torch

from sae_difficulty.modalities.llm import backbone as llm_backbone
from sae_difficulty.modalities.llm import corpus as llm_corpus
from sae_difficulty.modalities.llm import families as llm_families
from sae_difficulty.utils.errors import InputError

torch.set_num_threads(1)

VOCAB = 300
SHARED = {"vocab_size": VOCAB, "bos_token_id": 0, "eos_token_id": 0, "pad_token_id": 1}
ROTARY = {"num_hidden_layers": 2, "hidden_size": 32, "intermediate_size": 64, "num_attention_heads": 4, "max_position_embeddings": 64}

# model_type -> (transformers config class, its kwargs, TransformerLens's default_prepend_bos for the family)
FAMILY_CONFIGS = {
    "gpt2": ("GPT2Config", {"n_layer": 2, "n_embd": 32, "n_head": 4, "n_positions": 64}, True),
    "gpt_neox": ("GPTNeoXConfig", {**ROTARY, "rope_parameters": {"rope_type": "default", "rope_theta": 500.0, "partial_rotary_factor": 0.5}}, False),
    "llama": ("LlamaConfig", {**ROTARY, "num_key_value_heads": 2, "rope_parameters": {"rope_type": "default", "rope_theta": 500.0}}, True),
    "qwen2": ("Qwen2Config", {**ROTARY, "num_key_value_heads": 2, "rope_parameters": {"rope_type": "default", "rope_theta": 500.0}}, False),
    "gemma2": (
        "Gemma2Config",
        {
            **ROTARY,
            "num_key_value_heads": 2,
            "head_dim": 16,  # Gemma's head size is independent of d_model / n_heads
            "query_pre_attn_scalar": 12,
            "sliding_window": 4,
            "attn_logit_softcapping": 3.0,
            "final_logit_softcapping": 5.0,
        },
        True,
    ),
}


@pytest.fixture(autouse=True)
def offline(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("TRANSFORMERS_OFFLINE", "1")


@pytest.fixture(scope="module")
def tokenizer():
    text = "".join(pydoc_data.topics.topics[key] for key in sorted(pydoc_data.topics.topics)[:6])[:8000]
    return llm_corpus.train_tokenizer([text], VOCAB)


def save_random_model(model_type: str, out_dir, tokenizer, **overrides):
    """A randomly initialized causal LM of ``model_type`` with every weight ~ N(0, 0.3), saved with its tokenizer."""
    import transformers

    class_name, kwargs, _ = FAMILY_CONFIGS[model_type]
    config = getattr(transformers, class_name)(**SHARED, **kwargs, **overrides)
    torch.manual_seed(0)
    model = transformers.AutoModelForCausalLM.from_config(config)
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for param in model.parameters():
            param.normal_(0.0, 0.3, generator=generator)
    model.save_pretrained(out_dir)
    tokenizer.save_pretrained(out_dir)
    return out_dir


@pytest.fixture(scope="module", params=sorted(FAMILY_CONFIGS))
def family_dir(request, tmp_path_factory, tokenizer):
    model_type = request.param
    return model_type, save_random_model(model_type, tmp_path_factory.mktemp(f"tiny-{model_type}-model"), tokenizer)


def hf_reference(model_dir):
    from transformers import AutoModelForCausalLM

    # eager attention: the only Hugging Face attention that applies Gemma-2's score softcap
    return AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32, attn_implementation="eager").eval()


def hf_final_norm(hf_model):
    """The final norm Hugging Face applies before storing its last hidden state."""
    base = hf_model.base_model
    return getattr(base, "norm", None) or getattr(base, "ln_f", None) or base.final_layer_norm


def test_each_family_matches_hugging_face_logits_and_residual_stream(family_dir):
    model_type, model_dir = family_dir
    backbone = llm_backbone.load_backbone(model_dir, device="cpu")
    assert backbone.model.cfg.original_architecture == llm_families.FAMILIES[model_type].architecture
    assert backbone.default_prepend_bos is FAMILY_CONFIGS[model_type][2]
    text = "The assert statement raises AssertionError when its test fails, and the with statement"
    ids = torch.tensor([[backbone.bos_id] + backbone.encode(text)[:19]])
    assert ids.shape[1] == 20  # longer than Gemma-2's sliding window of 4

    hf = hf_reference(model_dir)
    with torch.no_grad():
        reference = hf(input_ids=ids, output_hidden_states=True)
        logits, cache = backbone.model.run_with_cache(ids, names_filter=lambda name: name.endswith("hook_resid_post"))
    assert reference.logits.std() > 0.2, "random weights too small for the comparison to mean anything"
    max_diff = torch.max(torch.abs(logits - reference.logits)).item()
    print(f"{model_type}: max |logit difference| {max_diff:.2e}")
    assert max_diff < 1e-4

    # hidden_states[L + 1] is block L's output, except the last entry, which is after the final norm.
    last = backbone.n_layers - 1
    for layer in range(last):
        resid = cache[llm_backbone.check_layer(backbone, layer)]
        torch.testing.assert_close(resid, reference.hidden_states[layer + 1], atol=1e-4, rtol=1e-4)
        # the path the activation cache uses: the forward stopped after the block
        torch.testing.assert_close(backbone.model(ids, stop_at_layer=layer + 1), resid, atol=1e-5, rtol=1e-5)
    with torch.no_grad():
        normed_last = hf_final_norm(hf)(cache[f"blocks.{last}.hook_resid_post"])
    torch.testing.assert_close(normed_last, reference.hidden_states[last + 1], atol=1e-4, rtol=1e-4)


def test_gemma2_softcaps_and_sliding_window_are_carried_over(tmp_path, tokenizer):
    model_dir = save_random_model("gemma2", tmp_path / "gemma", tokenizer)
    model = llm_backbone.load_backbone(model_dir, device="cpu").model
    cfg = model.cfg
    assert (cfg.attn_scores_soft_cap, cfg.output_logits_soft_cap, cfg.window_size) == (3.0, 5.0, 4)
    assert cfg.attn_types == ["local", "global"] and cfg.d_head == 16 and cfg.attn_scale == pytest.approx(12**0.5)
    # logits stay inside the final softcap, so a model without it would not match
    ids = torch.arange(2, 22)[None]
    with torch.no_grad():
        assert model(ids).abs().max() < 5.0


def test_unsupported_model_type_is_a_one_line_error_naming_the_families(tmp_path):
    from transformers import OPTConfig

    OPTConfig(vocab_size=VOCAB, hidden_size=16, num_hidden_layers=1, ffn_dim=32, num_attention_heads=2).save_pretrained(tmp_path)
    with pytest.raises(InputError) as error:
        llm_backbone.load_backbone(tmp_path, device="cpu")
    message = str(error.value)
    assert "\n" not in message and "model_type 'opt' is not supported" in message
    assert all(model_type in message for model_type in FAMILY_CONFIGS)


def test_checkpoint_without_language_model_head_is_refused(tmp_path):
    from transformers import GPT2Config

    GPT2Config(**SHARED, n_layer=1, n_embd=16, n_head=2, architectures=["GPT2Model"]).save_pretrained(tmp_path)
    with pytest.raises(InputError, match="lack the causal-LM class 'GPT2LMHeadModel'"):
        llm_backbone.load_backbone(tmp_path, device="cpu")


@pytest.mark.parametrize(
    ("model_type", "rope", "match"),
    [
        ("llama", {"rope_type": "linear", "rope_theta": 500.0, "factor": 2.0}, "rope_type 'linear'"),
        ("qwen2", {"rope_type": "yarn", "rope_theta": 500.0, "factor": 2.0}, "rope_type 'yarn'"),
    ],
)
def test_rope_scaling_transformer_lens_cannot_reproduce_is_refused(tmp_path, model_type, rope, match):
    import transformers

    class_name, kwargs, _ = FAMILY_CONFIGS[model_type]
    config = getattr(transformers, class_name)(**SHARED, **{**kwargs, "rope_parameters": rope})
    with pytest.raises(InputError, match=match):
        llm_families.hooked_config(config, llm_families.family_of(config, tmp_path), tmp_path, "cpu")


# The published config.json values of google/gemma-2-2b (gemma-2-27b and Llama-3.2-1B differ where given).
GEMMA2_2B = {
    "architectures": ["Gemma2ForCausalLM"],
    "attn_logit_softcapping": 50.0,
    "bos_token_id": 2,
    "eos_token_id": 1,
    "pad_token_id": 0,
    "final_logit_softcapping": 30.0,
    "head_dim": 256,
    "hidden_activation": "gelu_pytorch_tanh",
    "hidden_size": 2304,
    "initializer_range": 0.02,
    "intermediate_size": 9216,
    "max_position_embeddings": 8192,
    "num_attention_heads": 8,
    "num_hidden_layers": 26,
    "num_key_value_heads": 4,
    "query_pre_attn_scalar": 256,
    "rms_norm_eps": 1e-06,
    "rope_theta": 10000.0,
    "sliding_window": 4096,
    "vocab_size": 256000,
}
GEMMA2_27B = {
    **GEMMA2_2B,
    "head_dim": 128,
    "hidden_size": 4608,
    "intermediate_size": 36864,
    "num_attention_heads": 32,
    "num_hidden_layers": 46,
    "num_key_value_heads": 16,
    "query_pre_attn_scalar": 144,
}
LLAMA_32_1B = {
    "architectures": ["LlamaForCausalLM"],
    "head_dim": 64,
    "hidden_act": "silu",
    "hidden_size": 2048,
    "intermediate_size": 8192,
    "max_position_embeddings": 131072,
    "num_attention_heads": 32,
    "num_hidden_layers": 16,
    "num_key_value_heads": 8,
    "rms_norm_eps": 1e-05,
    "rope_scaling": {
        "factor": 32.0,
        "high_freq_factor": 4.0,
        "low_freq_factor": 1.0,
        "original_max_position_embeddings": 8192,
        "rope_type": "llama3",
    },
    "rope_theta": 500000.0,
    "tie_word_embeddings": True,
    "vocab_size": 128256,
}
PARITY_FIELDS = (
    "d_model", "d_head", "n_heads", "n_key_value_heads", "d_mlp", "n_layers", "n_ctx", "eps", "d_vocab",
    "act_fn", "normalization_type", "positional_embedding_type", "rotary_base", "rotary_dim",
    "rotary_adjacent_pairs", "attn_scale", "window_size", "use_local_attn", "attn_types",
    "attn_scores_soft_cap", "output_logits_soft_cap", "gated_mlp", "final_rms",
    "use_normalization_before_and_after", "default_prepend_bos", "use_NTK_by_parts_rope",
    "NTK_by_parts_low_freq_factor", "NTK_by_parts_high_freq_factor", "NTK_by_parts_factor",
    "NTK_original_ctx_len", "original_architecture", "parallel_attn_mlp",
)


@pytest.mark.parametrize(
    ("hub_name", "config_class", "published", "differs"),
    [
        ("google/gemma-2-2b", "Gemma2Config", GEMMA2_2B, {}),
        ("google/gemma-2-27b", "Gemma2Config", GEMMA2_27B, {}),
        # TransformerLens caps Llama-3's context "due to memory issues"; a local checkpoint keeps its own.
        ("meta-llama/Llama-3.2-1B", "LlamaConfig", LLAMA_32_1B, {"n_ctx": (131072, 2048)}),
    ],
)
def test_local_config_equals_transformer_lens_hub_config_of_the_published_model(hub_name, config_class, published, differs):
    """For these names TransformerLens writes the config from the name alone (no download), so
    the local route's config, read from the published config.json, can be checked against it."""
    import transformers
    from transformer_lens.loading_from_pretrained import get_pretrained_model_config

    hf_config = getattr(transformers, config_class)(**published)
    local = llm_families.hooked_config(hf_config, llm_families.family_of(hf_config, hub_name), f"/models/{hub_name}", "cpu")
    hub = get_pretrained_model_config(hub_name, device="cpu")
    mismatched = {field: (getattr(local, field), getattr(hub, field)) for field in PARITY_FIELDS if getattr(local, field) != getattr(hub, field)}
    assert mismatched == differs


# Published config.json files of models whose TransformerLens hub config is read from config.json itself.
HUB_CONFIGS = {
    "gpt2": {
        "activation_function": "gelu_new",
        "architectures": ["GPT2LMHeadModel"],
        "bos_token_id": 50256,
        "eos_token_id": 50256,
        "initializer_range": 0.02,
        "layer_norm_epsilon": 1e-05,
        "model_type": "gpt2",
        "n_ctx": 1024,
        "n_embd": 768,
        "n_head": 12,
        "n_layer": 12,
        "n_positions": 1024,
        "vocab_size": 50257,
    },
    "EleutherAI/pythia-160m": {
        "architectures": ["GPTNeoXForCausalLM"],
        "bos_token_id": 0,
        "eos_token_id": 0,
        "hidden_act": "gelu",
        "hidden_size": 768,
        "initializer_range": 0.02,
        "intermediate_size": 3072,
        "layer_norm_eps": 1e-05,
        "max_position_embeddings": 2048,
        "model_type": "gpt_neox",
        "num_attention_heads": 12,
        "num_hidden_layers": 12,
        "rotary_emb_base": 10000,
        "rotary_pct": 0.25,
        "tie_word_embeddings": False,
        "use_parallel_residual": True,
        "vocab_size": 50304,
    },
    "Qwen/Qwen2-0.5B": {
        "architectures": ["Qwen2ForCausalLM"],
        "bos_token_id": 151643,
        "eos_token_id": 151643,
        "hidden_act": "silu",
        "hidden_size": 896,
        "initializer_range": 0.02,
        "intermediate_size": 4864,
        "max_position_embeddings": 131072,
        "max_window_layers": 24,
        "model_type": "qwen2",
        "num_attention_heads": 14,
        "num_hidden_layers": 24,
        "num_key_value_heads": 2,
        "rms_norm_eps": 1e-06,
        "rope_theta": 1000000.0,
        "sliding_window": 131072,
        "tie_word_embeddings": True,
        "use_sliding_window": False,
        "vocab_size": 151936,
    },
}


@pytest.mark.parametrize("hub_name", sorted(HUB_CONFIGS))
def test_local_config_equals_transformer_lens_hub_config_read_from_the_cache(tmp_path, hub_name):
    """TransformerLens's hub route reads these configs through AutoConfig: a cache holding only
    the published config.json gives it, and the local route reads the same file."""
    import json

    from transformer_lens.loading_from_pretrained import get_pretrained_model_config
    from transformers import AutoConfig

    repo = tmp_path / "hub" / f"models--{hub_name.replace('/', '--')}"
    snapshot = repo / "snapshots" / ("0" * 40)
    snapshot.mkdir(parents=True)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text("0" * 40)
    (snapshot / "config.json").write_text(json.dumps(HUB_CONFIGS[hub_name]))

    hf_config = AutoConfig.from_pretrained(snapshot)
    local = llm_families.hooked_config(hf_config, llm_families.family_of(hf_config, snapshot), snapshot, "cpu")
    hub = get_pretrained_model_config(hub_name, device="cpu", cache_dir=str(tmp_path / "hub"), local_files_only=True)
    assert {field: (getattr(local, field), getattr(hub, field)) for field in PARITY_FIELDS if getattr(local, field) != getattr(hub, field)} == {}
