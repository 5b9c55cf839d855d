"""Prompt and continuation encoding for the LM backbone (truncation that keeps room for answers)."""


from __future__ import annotations

import torch

from sae_difficulty.modalities.llm.backbone import Backbone
from sae_difficulty.utils.errors import InputError

# ----------------------------------------------------------------------------- model helpers


def encode_prompt(backbone: Backbone, prompt: str, reserve: int = 0) -> list[int]:
    """``[bos] + tokens(prompt)``, left-truncated (BOS kept) so ``reserve`` more tokens fit the context."""
    return [backbone.bos_id] + backbone.encode(prompt)[-_prompt_room(backbone, reserve) :]


def _prompt_room(backbone: Backbone, reserve: int) -> int:
    """Prompt tokens that fit after BOS when ``reserve`` tokens must follow."""
    room = backbone.n_ctx - 1 - reserve
    if room < 1:
        raise InputError(f"a continuation of {reserve} tokens does not fit the model context of {backbone.n_ctx}")
    return room


def encode_prompts(backbone: Backbone, prompts: list[str], reserve: int = 0) -> list[list[int]]:
    """:func:`encode_prompt` of many prompts in one batched tokenizer call (the Rust
    tokenizer encodes the batch without per-call Python overhead: ~1 ms per prompt)."""
    room = _prompt_room(backbone, reserve)
    if not prompts:
        return []
    encoded = backbone.tokenizer(list(prompts), add_special_tokens=False)["input_ids"]
    return [[backbone.bos_id] + list(ids[-room:]) for ids in encoded]


def encode_continuation(backbone: Backbone, text: str) -> list[int]:
    """Token ids of a scored continuation, cut to half the model context (only a tiny demo
    model's context is ever that short; the prompt then keeps the other half)."""
    return backbone.encode(text)[: backbone.n_ctx // 2]


def right_pad(sequences: list[list[int]], pad_id: int) -> torch.Tensor:
    """Sequences as one right-padded tensor (causal attention never sees the padding)."""
    width = max(len(s) for s in sequences)
    out = torch.full((len(sequences), width), pad_id, dtype=torch.long)
    for i, s in enumerate(sequences):
        out[i, : len(s)] = torch.tensor(s, dtype=torch.long)
    return out
