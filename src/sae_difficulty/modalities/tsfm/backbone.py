"""Chronos-T5 backbones: build a small one offline, train it, save it in Hugging Face
format, and load any Chronos-T5 (hub name or local directory) with ``chronos.ChronosPipeline``.

The chronos-forecasting wheel ships no trainer (its training script lives in the source
repository only and depends on GluonTS and an HF ``Trainer`` set-up), so
:func:`train_backbone` is a short loop written here on top of the library's pieces: the
Chronos tokenizer's ``context_input_transform`` / ``label_input_transform`` (mean scaling,
uniform bins, EOS), label positions that are padding set to -100 as the Chronos training
script does, and the T5 model's own cross-entropy loss. The model is then saved with
``save_pretrained`` (its ``T5Config`` carries ``chronos_config``), so
``ChronosPipeline.from_pretrained(dir)`` - the same loader as for ``amazon/chronos-t5-small``
- reads it back.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from sae_difficulty.modalities.tsfm.data import (
    TrainingPool,
    sample_windows,
    training_pool,
)
from sae_difficulty.utils.errors import InputError

#: Backbone keys read by :func:`train_backbone` with their defaults (see tsfm.py for the meaning).
BACKBONE_DEFAULTS: dict[str, Any] = {
    "d_model": 64,
    "n_layers": 2,
    "n_decoder_layers": None,  # None = n_layers
    "n_heads": 4,
    "d_kv": None,  # None = d_model // n_heads
    "d_ff": 256,
    "dropout": 0.1,
    "context_length": 128,
    "prediction_length": 24,
    "n_tokens": 1024,
    "low_limit": -15.0,
    "high_limit": 15.0,
    "num_samples": 20,
    "temperature": 1.0,
    "top_k": 50,
    "top_p": 1.0,
    "train_steps": 300,
    "batch_size": 32,
    "lr": 1e-3,
    "weight_decay": 0.01,
    "warmup_steps": 0,
    "grad_clip": 1.0,
    "etth1_probability": 0.5,
    "heldout_windows": 128,
    "device": None,
}


def is_hub_backbone(params: dict[str, Any]) -> bool:
    """True when ``params["hub"]`` names a pretrained model (paper profile): nothing is trained."""
    return bool(params.get("hub"))


def backbone_spec(params: dict[str, Any]) -> dict[str, Any]:
    """``params`` completed with :data:`BACKBONE_DEFAULTS` and checked (one-line errors)."""
    spec = {key: default if params.get(key) is None else params[key] for key, default in BACKBONE_DEFAULTS.items()}
    spec["n_decoder_layers"] = spec["n_decoder_layers"] or spec["n_layers"]
    for key in ("d_model", "n_layers", "n_heads", "d_ff", "context_length", "prediction_length", "train_steps", "batch_size"):
        if int(spec[key]) < 1:
            raise InputError(f"backbone {key}: expected a positive integer, got {spec[key]}")
    if spec["d_kv"] is None:
        if spec["d_model"] % spec["n_heads"]:
            raise InputError(f"backbone d_model={spec['d_model']} is not divisible by n_heads={spec['n_heads']}; set d_kv")
        spec["d_kv"] = spec["d_model"] // spec["n_heads"]
    if int(spec["n_tokens"]) < 16:
        raise InputError(f"backbone n_tokens: expected >= 16 (bins plus special tokens), got {spec['n_tokens']}")
    return spec


def chronos_config(spec: dict[str, Any]) -> dict[str, Any]:
    """The ``chronos_config`` dict stored in the T5 config (the fields of ``chronos.ChronosConfig``),
    as the released Chronos-T5 checkpoints have it: MeanScaleUniformBins, pad 0, EOS 1, seq2seq."""
    return {
        "tokenizer_class": "MeanScaleUniformBins",
        "tokenizer_kwargs": {"low_limit": float(spec["low_limit"]), "high_limit": float(spec["high_limit"])},
        "context_length": int(spec["context_length"]),
        "prediction_length": int(spec["prediction_length"]),
        "n_tokens": int(spec["n_tokens"]),
        "n_special_tokens": 2,
        "pad_token_id": 0,
        "eos_token_id": 1,
        "use_eos_token": True,
        "model_type": "seq2seq",
        "num_samples": int(spec["num_samples"]),
        "temperature": float(spec["temperature"]),
        "top_k": int(spec["top_k"]),
        "top_p": float(spec["top_p"]),
    }


def build_chronos_t5(spec: dict[str, Any], seed: int):
    """A randomly initialized Chronos-T5 pipeline of the given size (no download)."""
    from chronos import ChronosConfig, ChronosModel, ChronosPipeline
    from transformers import T5Config, T5ForConditionalGeneration

    chronos = chronos_config(spec)
    config = T5Config(
        vocab_size=chronos["n_tokens"],
        d_model=int(spec["d_model"]),
        d_kv=int(spec["d_kv"]),
        d_ff=int(spec["d_ff"]),
        num_layers=int(spec["n_layers"]),
        num_decoder_layers=int(spec["n_decoder_layers"]),
        num_heads=int(spec["n_heads"]),
        dropout_rate=float(spec["dropout"]),
        feed_forward_proj="relu",
        # The Chronos training script's random-init scale (T5's default of 1.0 is for text).
        initializer_factor=0.05,
        pad_token_id=chronos["pad_token_id"],
        eos_token_id=chronos["eos_token_id"],
        decoder_start_token_id=chronos["pad_token_id"],
        chronos_config=chronos,
    )
    torch.manual_seed(seed)
    inner = T5ForConditionalGeneration(config)
    inner.generation_config.pad_token_id = chronos["pad_token_id"]
    inner.generation_config.eos_token_id = chronos["eos_token_id"]
    chronos_cfg = ChronosConfig(**chronos)
    return ChronosPipeline(tokenizer=chronos_cfg.create_tokenizer(), model=ChronosModel(config=chronos_cfg, model=inner))


def pick_device(device: str | None = None) -> str:
    """``device`` if given, else cuda > mps > cpu."""
    if device:
        return str(device)
    if torch.cuda.is_available():
        return "cuda"
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        return "mps"
    return "cpu"


def load_chronos(source: str | Path, device: str | None = None):
    """``ChronosPipeline.from_pretrained`` of a hub name or a local HF directory, float32, eval mode."""
    from chronos import ChronosPipeline

    device = pick_device(device)
    local = Path(source)
    if local.exists() and not (local / "config.json").is_file():
        raise InputError(f"backbone {source}: no config.json; expected a directory written by save_pretrained")
    try:
        pipeline = ChronosPipeline.from_pretrained(str(source), device_map=device, dtype=torch.float32)
    except AssertionError as error:
        raise InputError(f"backbone {source}: not a Chronos model ({error}); expected a T5 config with chronos_config") from None
    except OSError as error:
        first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise InputError(f"backbone {source}: cannot load ({first[:200]})") from None
    if pipeline.model.config.model_type != "seq2seq":
        raise InputError(f"backbone {source}: model_type {pipeline.model.config.model_type!r}; expected a seq2seq Chronos-T5")
    pipeline.model.model.eval()
    return pipeline


def window_loss(pipeline, windows: np.ndarray) -> torch.Tensor:
    """The T5 cross-entropy of the horizon tokens given the context tokens, for windows
    [B, context + prediction_length] (the last prediction_length steps are the labels), as
    Chronos is trained."""
    horizon = pipeline.model.config.prediction_length
    context = torch.as_tensor(windows[:, :-horizon], dtype=torch.float32)
    future = torch.as_tensor(windows[:, -horizon:], dtype=torch.float32)
    input_ids, attention_mask, scale = pipeline.tokenizer.context_input_transform(context)
    labels, labels_mask = pipeline.tokenizer.label_input_transform(future, scale)
    labels[labels_mask == 0] = -100
    device = pipeline.model.device
    output = pipeline.model.model(input_ids=input_ids.to(device), attention_mask=attention_mask.to(device), labels=labels.to(device))
    return output.loss


@torch.no_grad()
def mean_window_loss(pipeline, windows: np.ndarray, batch_size: int) -> float:
    """Mean of :func:`window_loss` over ``windows`` (eval mode, batched, weighted by batch size)."""
    inner = pipeline.model.model
    was_training = inner.training
    inner.eval()
    total = 0.0
    for start in range(0, len(windows), batch_size):
        batch = windows[start : start + batch_size]
        total += float(window_loss(pipeline, batch)) * len(batch)
    inner.train(was_training)
    return total / len(windows)


def train_backbone(params: dict[str, Any], out_dir: str | Path, seed: int) -> dict[str, Any]:
    """Train a small Chronos-T5 on the training pool and save it under ``out_dir`` (HF format).

    The pool is KernelSynth-like synthetic series plus ETTh1 before the task time cutoff
    (:func:`sae_difficulty.modalities.tsfm.data.training_pool`); batches are random windows
    of ``context_length + prediction_length`` steps. AdamW with linear warm-up and linear
    decay to zero, gradient clipping. Deterministic for a seed on a fixed device and
    thread count. Returns a summary with the held-out loss before and after training.
    """
    if is_hub_backbone(params):
        raise InputError(f"backbone hub={params['hub']!r} is loaded, not trained; call load_backbone instead")
    spec = backbone_spec(params)
    span = int(spec["context_length"]) + int(spec["prediction_length"])
    pool: TrainingPool = training_pool(params, min_length=span)
    device = pick_device(spec["device"])
    pipeline = build_chronos_t5(spec, seed)
    inner = pipeline.model.model.to(device)
    rng = np.random.default_rng([seed, 1])
    heldout = sample_windows(
        pool.heldout, pool.heldout_source, int(spec["heldout_windows"]), span, int(spec["context_length"]), np.random.default_rng([seed, 2])
    )
    initial_heldout = mean_window_loss(pipeline, heldout, int(spec["batch_size"]))
    optimizer = torch.optim.AdamW(inner.parameters(), lr=float(spec["lr"]), weight_decay=float(spec["weight_decay"]))
    steps, warmup = int(spec["train_steps"]), int(spec["warmup_steps"])

    def schedule(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        return max(0.0, (steps - step) / max(1, steps - warmup))

    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, schedule)
    inner.train()
    losses: list[float] = []
    progress = tqdm(range(steps), desc="train chronos-t5", unit="step", mininterval=5.0)
    for _ in progress:
        batch = sample_windows(
            pool.train, pool.train_source, int(spec["batch_size"]), span, int(spec["context_length"]), rng, float(spec["etth1_probability"])
        )
        loss = window_loss(pipeline, batch)
        if not torch.isfinite(loss):
            raise InputError(f"backbone training diverged (loss {loss.item()}); lower lr={spec['lr']}")
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(inner.parameters(), float(spec["grad_clip"]))
        optimizer.step()
        scheduler.step()
        losses.append(loss.item())
        progress.set_postfix(loss=f"{losses[-1]:.3f}", refresh=False)
    inner.eval()
    final_heldout = mean_window_loss(pipeline, heldout, int(spec["batch_size"]))
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    inner.to("cpu").save_pretrained(out_dir)
    tail = losses[-max(1, steps // 10) :]
    return {
        "architecture": "chronos-t5",
        "parameters": int(sum(p.numel() for p in inner.parameters())),
        "config": {k: v for k, v in spec.items() if k != "device"},
        "chronos_config": chronos_config(spec),
        "device": device,
        "train_steps": steps,
        "train_loss_first": losses[0],
        "train_loss_last": float(np.mean(tail)),
        "heldout_windows": len(heldout),
        "heldout_loss_initial": initial_heldout,
        "heldout_loss": final_heldout,
        "heldout_loss_uniform": math.log(int(spec["n_tokens"])),
        "pool": pool.summary,
        "trainer": "hand-written loop (chronos-forecasting ships no trainer): tokenizer transforms + T5 loss",
    }
