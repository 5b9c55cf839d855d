"""Chronos encoder hooks, forecast sampling with per-window seeds, CRPS, and SAE patching.

Positions. The Chronos tokenizer turns a context of C values into C tokens plus an EOS
token appended at the end (series shorter than the model's context are *left*-padded
with pad tokens whose attention mask is False; every task window here has the same
length and no missing value, so there is no padding). A *context position* is one whose
attention mask is True, EOS excluded: positions ``0..C-1``, the last one (``C-1``) being
the boundary step just before the forecast. Hooks edit and capture the output of
``pipeline.model.model.encoder.block[layer]`` (element 0 of the tuple the T5 block
returns, ``[batch, C+1, d_model]``) at those positions only; EOS is never patched.

Sampling. :func:`sample_forecasts` is ``ChronosPipeline.predict`` taken apart into the
same library pieces (the pipeline's tokenizer, the T5 encoder, ``generate`` of the T5
model with the Chronos generation settings, the tokenizer's ``output_transform``) for two
reasons ``predict`` cannot serve: the encoder runs once per window under our hooks and
its output is handed to ``generate`` (``predict`` would re-encode each of the S sample
rows), and the sampling noise comes from one ``torch.Generator`` per window instead of
the global RNG shared by the whole batch. The draw is the Gumbel-max form of sampling:
``argmax(scores - log E)`` with ``E ~ Exp(1)`` is a draw from ``softmax(scores)`` (the
same exponential trick ``torch.multinomial`` uses for one sample), applied after the
temperature / top-k / top-p warpers ``generate`` would use with ``do_sample=True``. So a
window's forecast depends only on its seed, not on its batch neighbours, and
*common random numbers* are exact: the natural, reconstructed and ablated forecasts of a
window share the same noise, so their CRPS difference isolates the intervention.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import numpy as np
import torch

from sae_difficulty.utils.errors import InputError

#: ``edit(hidden [B, L, d], context_mask [B, L] bool) -> hidden``: a change to a block's output.
Edit = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def window_seed(seed: int, index: int, stream: int = 0) -> int:
    """The sampling seed of window ``index`` (its row in the tasks table) for run ``seed``;
    ``stream`` separates independent draws (0 = the common stream)."""
    return int(np.random.SeedSequence([int(seed) & 0xFFFFFFFF, int(index), int(stream)]).generate_state(1, np.uint64)[0] >> 1)


# --------------------------------------------------------------------------- hooks


def encoder_blocks(pipeline) -> torch.nn.ModuleList:
    return pipeline.model.model.encoder.block


def check_layer(pipeline, layer: Any) -> int:
    """``layer`` as an int in ``[0, n_encoder_blocks)``, else a one-line error."""
    n_blocks = len(encoder_blocks(pipeline))
    if isinstance(layer, bool) or not isinstance(layer, (int, np.integer)) or not 0 <= int(layer) < n_blocks:
        model = getattr(pipeline.model.model.config, "name_or_path", "") or "the backbone"
        raise InputError(
            f"tsfm layer {layer!r} is out of range for {model}: this Chronos encoder has {n_blocks} blocks (valid 0..{n_blocks - 1})"
        )
    return int(layer)


@contextlib.contextmanager
def block_output_hook(pipeline, layer: int, fn: Callable[[torch.Tensor], torch.Tensor | None]) -> Iterator[None]:
    """Run ``fn`` on the hidden states leaving encoder block ``layer``; a returned tensor replaces them."""
    block = encoder_blocks(pipeline)[check_layer(pipeline, layer)]

    def hook(module, inputs, output):
        hidden = output[0] if isinstance(output, tuple) else output
        replaced = fn(hidden)
        if replaced is None:
            return None
        return (replaced,) + tuple(output[1:]) if isinstance(output, tuple) else replaced

    handle = block.register_forward_hook(hook)
    try:
        yield
    finally:
        handle.remove()


def tokenize(pipeline, contexts: np.ndarray) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Chronos tokens of contexts [B, C]: ``input_ids``, ``attention_mask``, ``scale`` and the
    context-position mask (attention mask with the EOS column cleared)."""
    context = torch.as_tensor(np.asarray(contexts, dtype=np.float32))
    input_ids, attention_mask, scale = pipeline.tokenizer.context_input_transform(context)
    context_mask = attention_mask.clone()
    if pipeline.model.config.use_eos_token:
        context_mask[:, -1] = False
    return input_ids, attention_mask, scale, context_mask


def last_position_mask(context_mask: torch.Tensor) -> torch.Tensor:
    """Mask of the last context position of each row."""
    length = context_mask.shape[1]
    positions = torch.arange(length, device=context_mask.device).expand_as(context_mask)
    last = torch.where(context_mask, positions, torch.full_like(positions, -1)).max(dim=1).values
    return positions == last[:, None]


@torch.no_grad()
def run_encoder(pipeline, contexts: np.ndarray, layer: int | None = None, edit: Edit | None = None, capture: bool = False):
    """Encode contexts, optionally editing and/or capturing block ``layer``'s output.

    Returns ``(encoder_output, attention_mask, scale, context_mask, captured)`` where
    ``captured`` is block ``layer``'s output after the edit ([B, L, d], on the model device)
    or None.
    """
    input_ids, attention_mask, scale, context_mask = tokenize(pipeline, contexts)
    device = pipeline.model.device
    encoder = pipeline.model.model.encoder
    captured: list[torch.Tensor] = []
    if layer is None:
        if edit is not None or capture:
            raise InputError("run_encoder: an edit or capture needs a layer")
        output = encoder(input_ids=input_ids.to(device), attention_mask=attention_mask.to(device)).last_hidden_state
        return output, attention_mask, scale, context_mask, None
    mask_on_device = context_mask.to(device)

    def at_block(hidden: torch.Tensor) -> torch.Tensor | None:
        new = edit(hidden, mask_on_device) if edit is not None else None
        if capture:
            captured.append((new if new is not None else hidden).detach())
        return new

    with block_output_hook(pipeline, layer, at_block):
        output = encoder(input_ids=input_ids.to(device), attention_mask=attention_mask.to(device)).last_hidden_state
    return output, attention_mask, scale, context_mask, (captured[0] if captured else None)


# --------------------------------------------------------------------------- sampling


class PerWindowGumbelNoise:
    """A ``generate`` logits processor that draws each window's next tokens from its own
    generator (Gumbel-max sampling); rows ``[w*S, (w+1)*S)`` belong to window ``w``."""

    def __init__(self, seeds: Sequence[int], num_samples: int) -> None:
        self.generators = [torch.Generator(device="cpu").manual_seed(int(s)) for s in seeds]
        self.num_samples = int(num_samples)

    def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
        vocabulary = scores.shape[-1]
        noise = torch.cat([torch.empty(self.num_samples, vocabulary).exponential_(generator=g) for g in self.generators]).clamp_min_(
            torch.finfo(torch.float32).tiny
        )
        return scores - noise.log().to(device=scores.device, dtype=scores.dtype)


def _warpers(temperature: float, top_k: int | None, top_p: float) -> list[Any]:
    """The warpers ``generate`` adds for ``do_sample=True`` with these settings, in its order."""
    from transformers.generation.logits_process import (
        TemperatureLogitsWarper,
        TopKLogitsWarper,
        TopPLogitsWarper,
    )

    warpers: list[Any] = []
    if temperature != 1.0:
        warpers.append(TemperatureLogitsWarper(temperature))
    if top_k:
        warpers.append(TopKLogitsWarper(top_k=int(top_k), min_tokens_to_keep=1))
    if top_p < 1.0:
        warpers.append(TopPLogitsWarper(top_p=float(top_p), min_tokens_to_keep=1))
    return warpers


def check_horizon(pipeline, horizon: int) -> None:
    limit = pipeline.model.config.prediction_length
    if horizon > limit:
        raise InputError(f"horizon {horizon} exceeds the backbone's prediction_length {limit}; use a shorter horizon")


@torch.no_grad()
def sample_forecasts(
    pipeline,
    contexts: np.ndarray,
    seeds: Sequence[int],
    num_samples: int,
    horizon: int,
    layer: int | None = None,
    edit: Edit | None = None,
    temperature: float | None = None,
    top_k: int | None = None,
    top_p: float | None = None,
) -> np.ndarray:
    """Sample paths [B, num_samples, horizon] (real values) for contexts [B, C], window ``b``'s
    noise drawn from ``seeds[b]``; ``edit`` changes encoder block ``layer``'s output first.
    Sampling settings default to the model's Chronos config."""
    from transformers import GenerationConfig, LogitsProcessorList
    from transformers.modeling_outputs import BaseModelOutput

    check_horizon(pipeline, horizon)
    if len(seeds) != len(contexts):
        raise InputError(f"sample_forecasts: {len(seeds)} seeds for {len(contexts)} windows")
    config = pipeline.model.config
    inner = pipeline.model.model
    hidden, attention_mask, scale, _, _ = run_encoder(pipeline, contexts, layer=layer, edit=edit)
    device = hidden.device
    encoder_output = BaseModelOutput(last_hidden_state=hidden.repeat_interleave(num_samples, dim=0))
    processors = _warpers(
        config.temperature if temperature is None else float(temperature),
        config.top_k if top_k is None else top_k,
        config.top_p if top_p is None else float(top_p),
    )
    processors.append(PerWindowGumbelNoise(seeds, num_samples))
    generation = GenerationConfig(
        min_new_tokens=horizon,
        max_new_tokens=horizon,
        do_sample=False,  # the noise is ours (PerWindowGumbelNoise); argmax of noisy scores samples
        num_beams=1,
        eos_token_id=config.eos_token_id,
        pad_token_id=config.pad_token_id,
        decoder_start_token_id=inner.config.decoder_start_token_id,
    )
    tokens = inner.generate(
        encoder_outputs=encoder_output,
        attention_mask=attention_mask.repeat_interleave(num_samples, dim=0).to(device),
        generation_config=generation,
        logits_processor=LogitsProcessorList(processors),
    )
    tokens = tokens[:, 1:].reshape(len(contexts), num_samples, -1).cpu()  # drop the decoder start token
    return pipeline.tokenizer.output_transform(tokens, scale).numpy().astype(np.float64)


def crps_per_window(samples: np.ndarray, targets: np.ndarray, estimator: str = "qd") -> np.ndarray:
    """Mean over horizon steps of the ensemble CRPS (scoringrules ``crps_ensemble``) of samples
    [N, S, H] against targets [N, H]; ``estimator`` "qd" is the CRPS of the empirical sample
    distribution, "fair" its unbiased version."""
    import scoringrules

    samples = np.asarray(samples, dtype=np.float64)
    targets = np.asarray(targets, dtype=np.float64)
    if samples.ndim != 3 or targets.shape != (samples.shape[0], samples.shape[2]):
        raise InputError(f"crps: samples {samples.shape} and targets {targets.shape} do not align as [N, S, H] / [N, H]")
    scores = scoringrules.crps_ensemble(targets, samples, m_axis=1, estimator=estimator, backend="numpy")
    return np.asarray(scores, dtype=np.float64).mean(axis=-1)


def seasonal_naive_mase(contexts: np.ndarray, targets: np.ndarray, point: np.ndarray, season: int = 24) -> np.ndarray:
    """MASE of point forecasts [N, H]: mean absolute error over the in-sample mean absolute
    ``season``-lag difference of the context (lag 1 when the context is not longer than one
    season); NaN where that scale is 0. Three lines of numpy: no installed library has it."""
    lag = season if contexts.shape[1] > season else 1
    scale = np.mean(np.abs(contexts[:, lag:] - contexts[:, :-lag]), axis=1)
    mae = np.mean(np.abs(point - targets), axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(scale > 0, mae / np.where(scale > 0, scale, 1.0), np.nan)


# --------------------------------------------------------------------------- SAE edits


def check_sae(sae: Any, d_model: int) -> None:
    """One-line errors for a missing SAE or one of the wrong width."""
    if sae is None:
        raise InputError("SAE is missing (None); expected a trained sae-lens SAE for this layer")
    for name in ("encode", "decode"):
        if not callable(getattr(sae, name, None)):
            raise InputError(f"SAE object {type(sae).__name__} has no {name}(); expected a sae-lens SAE")
    d_in = getattr(getattr(sae, "cfg", None), "d_in", None)
    if d_in != d_model:
        raise InputError(f"SAE d_in={d_in} does not match the encoder width d_model={d_model}")


def _sae_inputs(sae: Any, rows: torch.Tensor) -> torch.Tensor:
    parameter = next(iter(sae.parameters()), None) if hasattr(sae, "parameters") else None
    return rows.to(parameter.device, parameter.dtype) if parameter is not None else rows


def sae_reconstruct(sae: Any, rows: torch.Tensor, ablate: Sequence[int] | None = None) -> torch.Tensor:
    """``decode(encode(rows))`` (one feature set to 0 when ``ablate`` is given) in the SAE's
    dtype/device, returned in the rows' dtype/device."""
    from sae_difficulty.saes.encoding import reconstruct

    with torch.no_grad():
        out = reconstruct(sae, _sae_inputs(sae, rows), ablate_features=ablate)
    return out.to(rows.device, rows.dtype)


def _edited_positions(positions: str, context_mask: torch.Tensor) -> torch.Tensor:
    if positions not in ("all", "last"):
        raise InputError(f"positions: expected 'all' or 'last', got {positions!r}")
    return context_mask if positions == "all" else last_position_mask(context_mask)


@torch.no_grad()
def active_features(sae: Any, hidden: torch.Tensor, context_mask: torch.Tensor, positions: str) -> np.ndarray:
    """[B, d_sae] bool: which features fire at a window's edited positions, from the very codes
    :func:`reconstruction_edit` computes on the same block output ``hidden`` [B, L, d]."""
    where = _edited_positions(positions, context_mask)
    codes = sae.encode(_sae_inputs(sae, hidden[where]))
    window = torch.arange(hidden.shape[0], device=where.device)[:, None].expand_as(where)[where]
    counts = torch.zeros(hidden.shape[0], codes.shape[-1], dtype=torch.int32, device=codes.device)
    counts.index_add_(0, window.to(codes.device), (codes != 0).to(torch.int32))
    return (counts > 0).cpu().numpy()


def reconstruction_edit(sae: Any, positions: str, ablate: Sequence[int] | None = None) -> Edit:
    """Replace block outputs at the context positions (``"all"``) or the last one (``"last"``)
    by the SAE reconstruction, with the features in ``ablate`` zeroed."""
    _edited_positions(positions, torch.ones(1, 1, dtype=torch.bool))

    def edit(hidden: torch.Tensor, context_mask: torch.Tensor) -> torch.Tensor:
        where = _edited_positions(positions, context_mask)
        patched = hidden.clone()
        patched[where] = sae_reconstruct(sae, hidden[where], ablate)
        return patched

    return edit


def zero_edit(hidden: torch.Tensor, context_mask: torch.Tensor) -> torch.Tensor:
    """Zero-ablate block outputs at every context position."""
    patched = hidden.clone()
    patched[context_mask] = 0.0
    return patched


def check_sae_fidelity(sae: Any, activations: torch.Tensor | np.ndarray, min_explained_variance: float) -> float:
    """Explained variance of ``decode(encode(x))`` on activation rows [T, d]; a one-line error
    when it is below ``min_explained_variance`` (an untrained or mismatched SAE)."""
    from sae_difficulty.core.sae_metrics import explained_variance

    rows = torch.as_tensor(np.asarray(activations, dtype=np.float32)) if isinstance(activations, np.ndarray) else activations
    recon = sae_reconstruct(sae, rows.float())
    ev = explained_variance(rows.float().cpu().numpy(), recon.float().cpu().numpy())
    if not ev >= min_explained_variance:
        raise InputError(
            f"SAE explained variance {ev:.4f} on this layer's encoder states is below min_explained_variance="
            f"{min_explained_variance} (untrained SAE, or one trained on another layer/backbone?)"
        )
    return float(ev)
