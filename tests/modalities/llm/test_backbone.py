"""LLM backbone: demo corpus roles, training, and the TransformerLens loader (no downloads)."""

from __future__ import annotations

import json
import os

import pytest
import torch

from sae_difficulty.modalities import get_modality
from sae_difficulty.modalities.base import Modality
from sae_difficulty.modalities.llm import backbone as llm_backbone
from sae_difficulty.modalities.llm import corpus as llm_corpus
from sae_difficulty.utils.errors import InputError

os.environ["HF_HUB_OFFLINE"] = "1"
torch.set_num_threads(1)

TINY = {
    "d_model": 32,
    "n_layers": 2,
    "n_heads": 4,
    "d_mlp": 64,
    "context_length": 32,
    "vocab_size": 300,
    "train_steps": 6,
    "batch_size": 4,
    "warmup_steps": 2,
    "heldout_windows": 4,
    "corpus": {"prose_chars": 40_000, "code_chars": 20_000},
}

# EleutherAI/pythia-14m's config.json as published on the hub (transformers 4.x keys).
PYTHIA_14M_CONFIG = {
    "architectures": ["GPTNeoXForCausalLM"],
    "bos_token_id": 0,
    "eos_token_id": 0,
    "hidden_act": "gelu",
    "hidden_size": 128,
    "initializer_range": 0.02,
    "intermediate_size": 512,
    "layer_norm_eps": 1e-05,
    "max_position_embeddings": 2048,
    "model_type": "gpt_neox",
    "num_attention_heads": 4,
    "num_hidden_layers": 6,
    "rotary_emb_base": 10000,
    "rotary_pct": 0.25,
    "tie_word_embeddings": False,
    "torch_dtype": "float16",
    "use_cache": True,
    "use_parallel_residual": True,
    "vocab_size": 50304,
}


@pytest.fixture(scope="module")
def trained_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("backbone")
    summary = llm_backbone.train_backbone(TINY, out, seed=3)
    return out, summary


def hf_log_probs(model_dir, ids):
    from transformers import GPTNeoXForCausalLM

    hf = GPTNeoXForCausalLM.from_pretrained(model_dir, dtype=torch.float32).eval()
    with torch.no_grad():
        return torch.log_softmax(hf(input_ids=ids).logits, dim=-1)


def test_adapter_satisfies_the_protocol():
    assert isinstance(get_modality("llm"), Modality)


def test_corpus_roles_are_disjoint_and_a_pure_function_of_the_key():
    documents = llm_corpus.python_documents()
    roles = {doc.key: doc.role for doc in documents}
    assert set(roles.values()) == set(llm_corpus.ROLES)
    backbone_keys = {doc.key for doc in llm_corpus.backbone_documents(None, None)}
    assert backbone_keys and all(roles[key] == "backbone" for key in backbone_keys)
    for role in ("tasks", "sae", "heldout"):
        assert backbone_keys.isdisjoint(doc.key for doc in llm_corpus.documents_for(role))
    # a budget only selects within the backbone role; it never moves a document between roles
    small = {doc.key for doc in llm_corpus.backbone_documents(20_000, 20_000)}
    assert small < backbone_keys
    assert llm_corpus.role_of("pydoc/assert/0") == llm_corpus.role_of("pydoc/assert/0")


def test_training_saves_a_loadable_hf_model_deterministically(trained_dir, tmp_path):
    out, summary = trained_dir
    assert (out / "config.json").exists() and (out / "tokenizer.json").exists()
    config = json.loads((out / "config.json").read_text())
    assert config["use_parallel_residual"] is True and config["hidden_size"] == TINY["d_model"]
    assert summary["n_params"] > 0 and summary["train_tokens"] == 6 * 4 * 32
    assert summary["heldout_loss"] > 0 and summary["train_loss_last"] < summary["train_loss_first"]
    again = llm_backbone.train_backbone(TINY, tmp_path / "again", seed=3)
    assert again["heldout_loss"] == summary["heldout_loss"]
    other_seed = llm_backbone.train_backbone(TINY, tmp_path / "other", seed=4)
    assert other_seed["heldout_loss"] != summary["heldout_loss"]


def test_hf_to_transformer_lens_round_trip_keeps_log_probs(trained_dir):
    out, _ = trained_dir
    backbone = llm_backbone.load_backbone(out, device="cpu")
    ids = torch.tensor([[backbone.bos_id] + backbone.encode("The assert statement raises AssertionError when the test fails.")])
    ids = ids[:, : backbone.n_ctx]
    with torch.no_grad():
        tl = torch.log_softmax(backbone.model(ids), dim=-1)
    hf = hf_log_probs(out, ids)
    assert tl.shape == hf.shape
    assert torch.max(torch.abs(tl - hf)).item() < 1e-4
    assert backbone.n_layers == TINY["n_layers"] and backbone.d_model == TINY["d_model"]


def test_random_pythia_14m_config_loads_offline(tmp_path, monkeypatch):
    from transformers import GPTNeoXConfig, GPTNeoXForCausalLM

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    model_dir = tmp_path / "pythia-14m-random"
    model_dir.mkdir()
    (model_dir / "config.json").write_text(json.dumps(PYTHIA_14M_CONFIG))
    torch.manual_seed(0)
    hf = GPTNeoXForCausalLM(GPTNeoXConfig.from_pretrained(model_dir)).eval()
    hf.save_pretrained(model_dir)
    llm_corpus.train_tokenizer(["a small tokenizer for the test " * 20], 300).save_pretrained(model_dir)

    backbone = llm_backbone.load_backbone(model_dir, device="cpu")
    cfg = backbone.model.cfg
    assert (cfg.n_layers, cfg.d_model, cfg.n_heads, cfg.d_vocab, cfg.rotary_dim) == (6, 128, 4, 50304, 8)
    assert cfg.parallel_attn_mlp
    ids = torch.tensor([[0, 17, 4000, 123, 50000, 9]])
    with torch.no_grad():
        tl = torch.log_softmax(backbone.model(ids), dim=-1)
        reference = torch.log_softmax(hf(input_ids=ids).logits, dim=-1)
    assert torch.max(torch.abs(tl - reference)).item() < 1e-4


def test_bad_sources_and_params_fail_with_one_line(tmp_path):
    with pytest.raises(InputError, match="config.json"):
        llm_backbone.load_backbone(tmp_path, device="cpu")
    with pytest.raises(InputError, match="neither a local model directory"):
        llm_backbone.load_backbone(str(tmp_path / "missing" / "dir"), device="cpu")
    with pytest.raises(InputError, match="unknown key"):
        llm_backbone.BackboneParams.from_dict({"d_modle": 3})
    with pytest.raises(InputError, match="hub"):
        llm_backbone.train_backbone({"hub": "EleutherAI/pythia-410m"}, tmp_path, 0)
    assert llm_backbone.is_hub_backbone({"hub": "EleutherAI/pythia-410m"})
    assert not llm_backbone.is_hub_backbone({"hub": None, "d_model": 64})


def test_layer_out_of_range_is_a_one_line_error(trained_dir):
    backbone = llm_backbone.load_backbone(trained_dir[0], device="cpu")
    assert llm_backbone.check_layer(backbone, 1) == "blocks.1.hook_resid_post"
    for layer in (2, -1):
        with pytest.raises(InputError, match="out of range"):
            llm_backbone.check_layer(backbone, layer)


def test_device_is_picked_automatically():
    assert llm_backbone.pick_device("cpu") == "cpu"
    expected = "cuda" if torch.cuda.is_available() else ("mps" if torch.backends.mps.is_available() else "cpu")
    assert llm_backbone.pick_device() == expected


def test_repeat_spans_copy_a_span_of_the_window_later_in_it():
    windows = torch.arange(1, 129).repeat(50, 1)
    windows[:, 0] = 0  # BOS
    repeated = llm_backbone.repeat_spans(windows, torch.Generator().manual_seed(0))
    assert repeated.shape == windows.shape and (repeated[:, 0] == 0).all()
    low, high = llm_backbone.REPEAT_SPAN
    positions = set()
    for row in repeated.tolist():
        body = row[1:]
        # the body is the original text with one copied span inserted: exactly one place where it steps back
        steps_back = [i for i in range(1, len(body)) if body[i] <= body[i - 1]]
        assert len(steps_back) == 1
        start = steps_back[0]
        length = next(k for k in range(1, len(body) - start + 1) if start + k == len(body) or body[start + k] != body[start] + k)
        assert low <= length <= high or start + length == len(body)  # the tail may cut the copy
        assert body[start : start + length] == body[body.index(body[start]) :][:length]  # the copy repeats earlier text
        positions.add(start)
    assert len(positions) > 20  # spans land at many places, so no fixed offset can stand in for copying


def test_repeat_fraction_zero_trains_as_plain_text_and_bad_values_fail(tmp_path):
    plain = llm_backbone.train_backbone({**TINY, "train_steps": 2}, tmp_path / "plain", seed=1)
    explicit = llm_backbone.train_backbone({**TINY, "train_steps": 2, "repeat_fraction": 0.0}, tmp_path / "zero", seed=1)
    repeated = llm_backbone.train_backbone({**TINY, "train_steps": 2, "repeat_fraction": 1.0}, tmp_path / "rep", seed=1)
    assert plain["train_loss_first"] == explicit["train_loss_first"]
    assert repeated["train_loss_first"] != plain["train_loss_first"]
    with pytest.raises(InputError, match="repeat_fraction"):
        llm_backbone.BackboneParams.from_dict({"repeat_fraction": 1.5})
