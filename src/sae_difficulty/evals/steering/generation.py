"""Sampling steered continuations with common random numbers, and their perplexity under the unsteered model."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from sae_difficulty.evals.steering.config import SteeringConfig
from sae_difficulty.modalities.llm.backbone import check_layer
from sae_difficulty.modalities.llm.scoring import continuation_nll
from sae_difficulty.utils.errors import InputError


def _row_generator(generator_seed: int, sample: int, prompt: Sequence[int]) -> torch.Generator:
    """A generator for one (prompt, sample) row, independent of batch and position in the list."""
    state = np.random.SeedSequence([int(generator_seed), int(sample), len(prompt), *map(int, prompt)]).generate_state(1, np.uint64)[0]
    return torch.Generator(device="cpu").manual_seed(int(state))


def _check_prompt_ids(backbone: Any, prompt_ids: Sequence[Sequence[int]], n_new_tokens: int) -> None:
    for i, row in enumerate(prompt_ids):
        if len(row) < 1 or int(row[0]) != backbone.bos_id:
            raise InputError(f"steering prompt_ids[{i}]: expected a row starting with BOS id {backbone.bos_id} (see llm_tasks.encode_prompt)")
        if len(row) + n_new_tokens > backbone.n_ctx:
            raise InputError(
                f"steering prompt_ids[{i}]: {len(row)} tokens + {n_new_tokens} new exceed the model context {backbone.n_ctx}"
            )


@torch.no_grad()
def generate(
    backbone: Any,
    prompt_ids: Sequence[Sequence[int]],
    direction: torch.Tensor | np.ndarray | None,
    coefficient: float,
    config: SteeringConfig,
    generator_seed: int,
    scale: float = 1.0,
) -> list[list[int]]:
    """Sampled continuations with ``coefficient * scale * direction`` added to the residual.

    ``prompt_ids`` rows start with BOS. Returns ``len(prompt_ids) * samples_per_prompt``
    continuations of ``n_new_tokens`` ids, prompt-major (prompt 0's samples first). The
    vector is added at ``blocks.{layer}.hook_resid_post`` on every position but BOS.
    Rows of equal prompt length are batched (``batch_size``); the result does not depend
    on the batching (per-row generators, see the module docstring).
    """
    hook_name = check_layer(backbone, config.layer)
    _check_prompt_ids(backbone, prompt_ids, config.n_new_tokens)
    model = backbone.model
    steer = None
    if direction is not None and coefficient != 0.0:
        vector = torch.as_tensor(np.asarray(direction, dtype=np.float64) * (coefficient * scale))
        steer = vector.to(device=backbone.device, dtype=model.cfg.dtype)

    def add_vector(resid: torch.Tensor, hook: Any) -> torch.Tensor:
        steered = resid.clone()
        steered[:, 1:, :] += steer
        return steered

    rows = [(p, s) for p in range(len(prompt_ids)) for s in range(config.samples_per_prompt)]
    by_length: dict[int, list[tuple[int, int]]] = {}
    for row in rows:
        by_length.setdefault(len(prompt_ids[row[0]]), []).append(row)
    out: dict[tuple[int, int], list[int]] = {}
    hooks = [(hook_name, add_vector)] if steer is not None else []
    with model.hooks(fwd_hooks=hooks):
        for length in sorted(by_length):
            group = by_length[length]
            for start in range(0, len(group), config.batch_size):
                batch = group[start : start + config.batch_size]
                draws = torch.stack(
                    [
                        torch.rand(config.n_new_tokens, generator=_row_generator(generator_seed, s, prompt_ids[p]), dtype=torch.float64)
                        for p, s in batch
                    ]
                )
                tokens = torch.tensor([list(prompt_ids[p]) for p, _ in batch], dtype=torch.long, device=backbone.device)
                for step in range(config.n_new_tokens):
                    logits = model(tokens)[:, -1, :].double().cpu()
                    cdf = torch.cumsum(torch.softmax(logits / config.temperature, dim=-1), dim=-1)
                    # Inverse-CDF draw; the clamp guards against cdf[-1] < 1 by round-off.
                    picked = torch.searchsorted(cdf, (draws[:, step : step + 1] * cdf[:, -1:]).contiguous(), right=True)
                    picked = picked.clamp_max(cdf.shape[-1] - 1)
                    tokens = torch.cat([tokens, picked.to(backbone.device)], dim=1)
                for row, (p, s) in enumerate(batch):
                    out[(p, s)] = tokens[row, length:].tolist()
    return [out[row] for row in rows]


def continuation_perplexity(
    backbone: Any, prompt_ids: Sequence[Sequence[int]], continuation_ids: Sequence[Sequence[int]], batch_size: int = 16
) -> np.ndarray:
    """exp(mean NLL) of each continuation's tokens under the UNSTEERED model, given its prompt."""
    if len(prompt_ids) != len(continuation_ids):
        raise InputError(f"continuation_perplexity: {len(prompt_ids)} prompts but {len(continuation_ids)} continuations")
    if any(len(c) == 0 for c in continuation_ids):
        raise InputError("continuation_perplexity: an empty continuation has no perplexity")
    nll, _ = continuation_nll(backbone, [(list(p), list(c)) for p, c in zip(prompt_ids, continuation_ids)], batch_size)
    return np.exp(np.array([row.mean() for row in nll]))


def decode_tokens(backbone: Any, ids: Sequence[int]) -> str:
    return backbone.tokenizer.decode(list(ids), skip_special_tokens=True)
