"""LM scoring used by the study and the evaluation suite: per-token NLL, continuation NLL, greedy answers."""


from __future__ import annotations

import sys

import numpy as np
import torch
from tqdm.auto import tqdm

from sae_difficulty.modalities.llm.backbone import Backbone
from sae_difficulty.modalities.llm.prompts import right_pad


def token_nll(logits: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
    """Negative log-likelihood (nats) of ``tokens[:, 1:]`` under ``logits[:, :-1]``: [batch, pos-1]."""
    log_probs = torch.log_softmax(logits[:, :-1].float(), dim=-1)
    return -log_probs.gather(-1, tokens[:, 1:, None]).squeeze(-1)


def continuation_nll(backbone: Backbone, pairs: list[tuple[list[int], list[int]]], batch_size: int, desc: str | None = None):
    """For each (prompt ids, continuation ids): per-token NLL of the continuation and of the prompt.

    Returns two lists of 1-D numpy arrays (continuation NLLs, prompt NLLs after BOS).
    """
    model = backbone.model
    pad = backbone.tokenizer.pad_token_id if backbone.tokenizer.pad_token_id is not None else backbone.bos_id
    answer_nll, prompt_nll = [], []
    batches = range(0, len(pairs), batch_size)
    for start in tqdm(batches, desc=desc, file=sys.stderr, disable=desc is None, mininterval=5.0):
        chunk = pairs[start : start + batch_size]
        tokens = right_pad([p + c for p, c in chunk], pad).to(backbone.device)
        with torch.no_grad():
            nll = token_nll(model(tokens), tokens).cpu().numpy()
        for row, (p, c) in enumerate(chunk):
            answer_nll.append(nll[row, len(p) - 1 : len(p) + len(c) - 1].astype(np.float64))
            prompt_nll.append(nll[row, : len(p) - 1].astype(np.float64))
    return answer_nll, prompt_nll


def greedy_answer(backbone: Backbone, prompt_ids: list[int], max_new_tokens: int, stop: tuple[str, ...]) -> str:
    """Greedy continuation of ``prompt_ids`` (TransformerLens ``generate``), cut at the first stop string."""
    tokens = torch.tensor([prompt_ids], dtype=torch.long, device=backbone.device)
    with torch.no_grad():
        out = backbone.model.generate(
            tokens,
            max_new_tokens=max_new_tokens,
            do_sample=False,
            stop_at_eos=True,
            eos_token_id=backbone.tokenizer.eos_token_id,
            verbose=False,
            return_type="tokens",
        )
    text = backbone.tokenizer.decode(out[0, len(prompt_ids) :].tolist(), skip_special_tokens=True).lstrip(" ")
    cut = min((text.find(s) for s in stop if s in text), default=len(text))
    return text[:cut].strip()
