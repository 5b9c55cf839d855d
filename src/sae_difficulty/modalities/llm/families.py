"""Model families a local Hugging Face directory can be loaded from, as TransformerLens configs.

TransformerLens converts the *weights* of every family here with its own per-architecture
functions (``get_pretrained_state_dict(..., hf_model=...)`` dispatches on
``cfg.original_architecture``), but its *config* route for a local directory
(``get_pretrained_model_config(path)``) is not usable: it dispatches on the path string
before reading ``config.json`` (a path containing "llama" or "gemma" takes a name-based
branch that reads no config and fails), it has no config-driven Gemma-2 branch at all
(Gemma-2 shapes exist only for the official google/gemma-2-* names), and its GPT-2 branch
reads ``n_ctx``, which a ``GPT2Config`` saved by transformers 5 no longer has. So the
loader builds the ``HookedTransformerConfig`` from the checkpoint's own Hugging Face config
here, one function per family, each mirroring TransformerLens's hub-name branch for that
family (same keys, same ``default_prepend_bos``) with the values read from the checkpoint.
Options TransformerLens cannot reproduce (rope scalings other than llama3, Llama biases,
Qwen2 sliding windows) are refused with a one-line error rather than converted wrongly.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from sae_difficulty.utils.errors import InputError


@dataclass(frozen=True)
class Family:
    """One supported model family: its Hugging Face ``model_type``, the causal-LM class
    TransformerLens's weight conversion dispatches on, and its config builder."""

    model_type: str
    name: str
    architecture: str
    config: Callable[[Any, str], dict[str, Any]]


def _rope(hf_config: Any) -> dict[str, Any]:
    """``rope_parameters`` (transformers 5) or the legacy ``rope_theta`` / ``rope_scaling`` keys, merged."""
    params = dict(getattr(hf_config, "rope_parameters", None) or {})
    legacy = getattr(hf_config, "rope_scaling", None)
    if isinstance(legacy, dict):
        params = {**legacy, **params}
    for legacy_base in ("rope_theta", "rotary_emb_base"):  # GPT-NeoX configs of transformers 4 say rotary_emb_base
        if "rope_theta" not in params and getattr(hf_config, legacy_base, None) is not None:
            params["rope_theta"] = getattr(hf_config, legacy_base)
    params.setdefault("rope_theta", 10000.0)
    params["rope_type"] = str(params.get("rope_type") or params.get("type") or "default").lower()
    return params


def _plain_rope(hf_config: Any, where: str) -> float:
    """The rope base of a family TransformerLens rotates without scaling; other rope types are refused."""
    rope = _rope(hf_config)
    if rope["rope_type"] != "default":
        raise InputError(f"{where}: rope_type {rope['rope_type']!r} is not supported for this family; expected 'default'")
    return float(rope["rope_theta"])


def _gpt2(hf: Any, where: str) -> dict[str, Any]:
    return {
        "d_model": hf.n_embd,
        "d_head": hf.n_embd // hf.n_head,
        "n_heads": hf.n_head,
        "d_mlp": hf.n_inner or 4 * hf.n_embd,
        "n_layers": hf.n_layer,
        "n_ctx": hf.n_positions,
        "eps": hf.layer_norm_epsilon,
        "d_vocab": hf.vocab_size,
        "act_fn": hf.activation_function,
        "use_attn_scale": getattr(hf, "scale_attn_weights", True),
        "use_local_attn": False,
        "scale_attn_by_inverse_layer_idx": hf.scale_attn_by_inverse_layer_idx,
        "normalization_type": "LN",
    }


def _gpt_neox(hf: Any, where: str) -> dict[str, Any]:
    from transformer_lens.utilities.hf_utils import get_rotary_pct_from_config

    d_head = hf.hidden_size // hf.num_attention_heads
    return {
        **_shape(hf, d_head, hf.layer_norm_eps, hf.hidden_act),
        "use_attn_scale": True,
        "use_local_attn": False,
        "scale_attn_by_inverse_layer_idx": False,
        "parallel_attn_mlp": getattr(hf, "use_parallel_residual", True),
        "positional_embedding_type": "rotary",
        "rotary_adjacent_pairs": False,
        "rotary_dim": round(get_rotary_pct_from_config(hf) * d_head),
        # TransformerLens's GPT-NeoX branch leaves the base at 10000; take it from the checkpoint.
        "rotary_base": _plain_rope(hf, where),
        "normalization_type": "LN",
        "default_prepend_bos": False,
    }


def _shape(hf: Any, d_head: int, eps: float, act_fn: str) -> dict[str, Any]:
    """The sizes every ``hidden_size``-style config (GPT-NeoX, Llama, Qwen2, Gemma-2) names alike."""
    return {
        "d_model": hf.hidden_size,
        "d_head": d_head,
        "n_heads": hf.num_attention_heads,
        "d_mlp": hf.intermediate_size,
        "n_layers": hf.num_hidden_layers,
        "n_ctx": hf.max_position_embeddings,
        "eps": eps,
        "d_vocab": hf.vocab_size,
        "act_fn": act_fn,
    }


def _rms_rotary(d_head: int, rotary_base: float) -> dict[str, Any]:
    """Llama-style blocks (Llama, Qwen2, Gemma-2): RMSNorm with a final norm, rotary over the whole
    head in halves (not adjacent pairs), gated MLP."""
    return {
        "normalization_type": "RMS",
        "positional_embedding_type": "rotary",
        "rotary_adjacent_pairs": False,
        "rotary_dim": d_head,
        "rotary_base": rotary_base,
        "final_rms": True,
        "gated_mlp": True,
    }


def _head_dim(hf: Any) -> int:
    return int(getattr(hf, "head_dim", None) or hf.hidden_size // hf.num_attention_heads)


def _llama(hf: Any, where: str) -> dict[str, Any]:
    if getattr(hf, "attention_bias", False) or getattr(hf, "mlp_bias", False):
        raise InputError(f"{where}: Llama attention_bias/mlp_bias=true is not supported; TransformerLens converts bias-free Llama weights only")
    d_head = _head_dim(hf)
    rope = _rope(hf)
    cfg = {
        **_shape(hf, d_head, hf.rms_norm_eps, hf.hidden_act),
        **_rms_rotary(d_head, float(rope["rope_theta"])),
        # TransformerLens uses grouped-query attention whenever this is set, so only when it differs.
        "n_key_value_heads": hf.num_key_value_heads if hf.num_key_value_heads != hf.num_attention_heads else None,
    }
    if rope["rope_type"] == "llama3":
        cfg.update(
            {
                "use_NTK_by_parts_rope": True,
                "NTK_original_ctx_len": rope.get("original_max_position_embeddings", hf.max_position_embeddings),
                "NTK_by_parts_low_freq_factor": rope.get("low_freq_factor", 1.0),
                "NTK_by_parts_high_freq_factor": rope.get("high_freq_factor", 4.0),
                "NTK_by_parts_factor": rope.get("factor", 1.0),
            }
        )
    elif rope["rope_type"] != "default":
        raise InputError(f"{where}: Llama rope_type {rope['rope_type']!r} is not supported; expected 'default' or 'llama3'")
    return cfg


def _qwen2(hf: Any, where: str) -> dict[str, Any]:
    if getattr(hf, "use_sliding_window", False):
        raise InputError(f"{where}: Qwen2 use_sliding_window=true is not supported; TransformerLens's Qwen2 attention is global")
    d_head = hf.hidden_size // hf.num_attention_heads
    return {
        **_shape(hf, d_head, hf.rms_norm_eps, hf.hidden_act),
        **_rms_rotary(d_head, _plain_rope(hf, where)),
        "n_key_value_heads": hf.num_key_value_heads,
        "use_attn_scale": True,
        "initializer_range": hf.initializer_range,
        "default_prepend_bos": False,
    }


GEMMA2_ATTENTION = {"sliding_attention": "local", "full_attention": "global"}


def _gemma2(hf: Any, where: str) -> dict[str, Any]:
    """Gemma-2: sandwich norms, alternating sliding/global attention, attention and logit softcaps.

    ``attn_scale`` is sqrt(query_pre_attn_scalar) (TransformerLens's 27b branch writes 12.0 =
    sqrt(144); for 2b/9b the scalar equals the head size, its default). The sqrt(d_model)
    embedding scale and the +1 of Gemma's RMSNorm gains are applied by the weight conversion.
    """
    d_head = _head_dim(hf)
    layer_types = list(getattr(hf, "layer_types", None) or ["sliding_attention", "full_attention"] * (hf.num_hidden_layers // 2 + 1))
    unknown = sorted(set(layer_types) - set(GEMMA2_ATTENTION))
    if unknown:
        raise InputError(f"{where}: Gemma-2 layer_types {unknown} are not supported; expected {sorted(GEMMA2_ATTENTION)}")
    soft_caps = {}
    if hf.attn_logit_softcapping is not None:
        soft_caps["attn_scores_soft_cap"] = float(hf.attn_logit_softcapping)
    if hf.final_logit_softcapping is not None:
        soft_caps["output_logits_soft_cap"] = float(hf.final_logit_softcapping)
    return {
        **_shape(hf, d_head, hf.rms_norm_eps, hf.hidden_activation),
        **_rms_rotary(d_head, _plain_rope(hf, where)),
        "initializer_range": hf.initializer_range,
        "use_attn_scale": True,
        "attn_scale": float(hf.query_pre_attn_scalar) ** 0.5,
        "n_key_value_heads": hf.num_key_value_heads,
        "window_size": hf.sliding_window,
        "use_local_attn": True,
        "attn_types": [GEMMA2_ATTENTION[kind] for kind in layer_types[: hf.num_hidden_layers]],
        **soft_caps,
        "use_normalization_before_and_after": True,
    }


FAMILIES: dict[str, Family] = {
    family.model_type: family
    for family in (
        Family("gpt2", "GPT-2", "GPT2LMHeadModel", _gpt2),
        Family("gpt_neox", "Pythia / GPT-NeoX", "GPTNeoXForCausalLM", _gpt_neox),
        Family("llama", "Llama", "LlamaForCausalLM", _llama),
        Family("qwen2", "Qwen2", "Qwen2ForCausalLM", _qwen2),
        Family("gemma2", "Gemma-2", "Gemma2ForCausalLM", _gemma2),
    )
}


def supported_families() -> str:
    """``model_type (name)`` of every supported family, for error messages."""
    return ", ".join(f"{family.model_type} ({family.name})" for family in FAMILIES.values())


def family_of(hf_config: Any, where: str | Path) -> Family:
    """The :class:`Family` of a Hugging Face config; a one-line error for any other model type.

    A checkpoint whose ``architectures`` names another class of the family (a bare
    ``GPT2Model``, a classifier head) is refused too: loading it as a causal LM would give
    a randomly initialized unembedding without saying so.
    """
    family = FAMILIES.get(getattr(hf_config, "model_type", None))
    if family is None:
        raise InputError(f"backbone {where}: model_type {getattr(hf_config, 'model_type', None)!r} is not supported; expected one of {supported_families()}")
    declared = list(getattr(hf_config, "architectures", None) or [])
    if declared and family.architecture not in declared:
        raise InputError(f"backbone {where}: architectures {declared} lack the causal-LM class {family.architecture!r} of model_type {family.model_type!r}; its unembedding would be random")
    return family


def hooked_config(hf_config: Any, family: Family, where: str | Path, device: str, dtype: torch.dtype = torch.float32):
    """The TransformerLens ``HookedTransformerConfig`` of a local checkpoint of ``family``.

    Finishes the family's dict the way ``get_pretrained_model_config`` finishes a hub
    config: ``original_architecture`` (which selects TransformerLens's weight conversion),
    no weight initialization, ``default_prepend_bos`` True unless the family says otherwise.
    """
    from transformer_lens import HookedTransformerConfig

    cfg = family.config(hf_config, f"backbone {where}")
    cfg.update(
        {
            "model_name": Path(where).name,
            "tokenizer_name": str(where),
            "original_architecture": family.architecture,
            "init_weights": False,
            "device": device,
            "dtype": dtype,
        }
    )
    cfg.setdefault("default_prepend_bos", True)
    return HookedTransformerConfig.from_dict(cfg)
