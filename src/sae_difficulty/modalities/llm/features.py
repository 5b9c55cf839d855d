"""Cheap per-example features of LM prompts (text statistics and prompt-only model statistics)."""


from __future__ import annotations

import string
from typing import Any

import numpy as np

from sae_difficulty.modalities.llm.backbone import Backbone
from sae_difficulty.modalities.llm.demo_tasks import split_sentences

# ----------------------------------------------------------------------------- cheap features


def text_features(text: str) -> dict[str, float]:
    """Lexical statistics of a prompt: sizes, vocabulary richness, character composition."""
    words = text.split()
    n_chars = max(len(text), 1)
    lowered = [w.strip(string.punctuation).lower() for w in words]
    lowered = [w for w in lowered if w]
    return {
        "prompt_chars": float(len(text)),
        "prompt_words": float(len(words)),
        "type_token_ratio": float(len(set(lowered)) / len(lowered)) if lowered else 0.0,
        "mean_word_length": float(np.mean([len(w) for w in lowered])) if lowered else 0.0,
        "digit_fraction": sum(ch.isdigit() for ch in text) / n_chars,
        "punct_fraction": sum(ch in string.punctuation for ch in text) / n_chars,
        "uppercase_fraction": sum(ch.isupper() for ch in text) / n_chars,
        "sentences": float(max(1, len(split_sentences(" ".join(words))))),
    }


def model_features(prompt_ids: list[int], prompt_nll: np.ndarray, n_ctx: int) -> dict[str, float]:
    """Prompt statistics that need the model's tokenizer and output (never its residual stream)."""
    mean_nll = float(prompt_nll.mean()) if len(prompt_nll) else 0.0
    return {
        "prompt_tokens": float(len(prompt_ids) - 1),
        "prompt_mean_nll": mean_nll,
        "prompt_perplexity": float(np.exp(min(mean_nll, 50.0))),
        "prompt_max_nll": float(prompt_nll.max()) if len(prompt_nll) else 0.0,
        "prompt_fills_context": float(len(prompt_ids) >= n_ctx - 1),
    }


def _word_set(text: str) -> set[str]:
    return {w.strip(string.punctuation).lower() for w in text.split()} - {""}


def hellaswag_features(record: dict[str, Any], ending_ids: list[list[int]]) -> dict[str, float]:
    lengths = np.array([len(ids) for ids in ending_ids], dtype=float)
    chars = np.array([len(e) for e in record["endings"]], dtype=float)
    ctx_words = _word_set(record["ctx"])
    overlaps = [len(_word_set(e) & ctx_words) / max(len(_word_set(e)), 1) for e in record["endings"]]
    return {
        "ending_tokens_mean": float(lengths.mean()),
        "ending_tokens_spread": float(lengths.max() - lengths.min()),
        "ending_chars_mean": float(chars.mean()),
        "ending_chars_std": float(chars.std()),
        "ending_context_overlap_mean": float(np.mean(overlaps)),
        "ending_context_overlap_spread": float(np.max(overlaps) - np.min(overlaps)),
        "ctx_b_words": float(len(str(record.get("ctx_b", "")).split())),
    }


def squad_features(record: dict[str, Any], backbone: Backbone) -> dict[str, float]:
    question_words = _word_set(record["question"])
    context_words = _word_set(record["context"])
    return {
        "context_words": float(len(record["context"].split())),
        "context_tokens": float(len(backbone.encode(record["context"]))),
        "question_words": float(len(record["question"].split())),
        "question_tokens": float(len(backbone.encode(record["question"]))),
        "question_context_overlap": len(question_words & context_words) / max(len(question_words), 1),
    }
