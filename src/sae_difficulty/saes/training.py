"""Train SAEs with sae-lens' own classes from a zarr training cache.

``SAETrainer`` with ``TopKTrainingSAE`` (TopK + auxiliary dead-feature loss),
``StandardTrainingSAE`` (ReLU + L1) or ``BatchTopKTrainingSAE``, fed by
:class:`~sae_difficulty.saes.cache.ZarrBatchStream`; saved with sae-lens'
``save_inference_model`` so ``sae_lens.SAE.load_from_disk(out_dir)`` loads it.
"""

from __future__ import annotations

import dataclasses
import math
import os
import sys
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from sae_lens import (
    BatchTopKTrainingSAE,
    BatchTopKTrainingSAEConfig,
    SAETrainer,
    StandardTrainingSAE,
    StandardTrainingSAEConfig,
    TopKTrainingSAE,
    TopKTrainingSAEConfig,
    TrainingSAE,
)
from sae_lens.config import LoggingConfig, SAETrainerConfig
from sae_lens.saes.sae import SAEMetadata, TrainStepOutput

from sae_difficulty.saes.cache import (
    DEFAULT_MAX_BATCHES_IN_MEMORY,
    open_training_cache,
    stream_batches,
)
from sae_difficulty.utils.errors import InputError
from sae_difficulty.utils.io import read_json, write_json
from sae_difficulty.utils.numerics import pinned_blas

ARCHITECTURES = ("topk", "relu", "batchtopk")
"""Project names; sae-lens calls ReLU+L1 "standard" and saves BatchTopK as "jumprelu"."""

NORMALIZATIONS = ("none", "expected_average_only_in")
LR_SCHEDULERS = ("constant", "cosineannealing")
TRAINING_SUMMARY_FILENAME = "training_summary.json"
_LOSS_TRACE_POINTS = 50


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


@dataclass(frozen=True)
class SAETrainingSpec:
    """Everything that determines a trained SAE (the store hashes ``to_dict()``).

    Width is ``expansion * d_in`` with ``d_in`` read from the cache. ``k`` is used by
    TopK/BatchTopK, ``l1_coefficient`` by ReLU. ``training_tokens`` is rounded down to a
    whole number of ``batch_size``-token steps. Defaults follow sae-lens except where a
    short CPU run needs otherwise: ``dead_feature_window`` (steps without firing before
    the TopK auxiliary loss treats a feature as dead) is 100 rather than 1000, and the
    activation-norm estimate uses 20 batches rather than 1000.
    """

    architecture: str = "topk"
    expansion: int = 8
    k: int = 32
    l1_coefficient: float = 1.0
    lr: float = 3e-4
    training_tokens: int = 2_000_000
    batch_size: int = 4096
    seed: int = 0
    lr_scheduler: str = "constant"
    lr_warm_up_steps: int = 0
    lr_decay_steps: int = 0
    lr_end: float | None = None
    l1_warm_up_steps: int = 0
    aux_loss_coefficient: float = 1.0
    dead_feature_window: int = 100
    feature_sampling_window: int = 2000
    normalize_activations: str = "expected_average_only_in"
    n_batches_for_norm_estimate: int = 20
    decoder_init_norm: float | None = 0.1
    apply_b_dec_to_input: bool = True
    rescale_acts_by_decoder_norm: bool = True
    topk_threshold_lr: float = 0.01
    adam_beta1: float = 0.9
    adam_beta2: float = 0.999
    max_batches_in_memory: int = DEFAULT_MAX_BATCHES_IN_MEMORY

    def __post_init__(self) -> None:
        def fail(key: str, expected: str) -> None:
            raise InputError(f"SAE spec: '{key}' = {getattr(self, key)!r}, expected {expected}")

        if self.architecture not in ARCHITECTURES:
            fail("architecture", f"one of {list(ARCHITECTURES)}")
        if self.normalize_activations not in NORMALIZATIONS:
            fail("normalize_activations", f"one of {list(NORMALIZATIONS)}")
        if self.lr_scheduler not in LR_SCHEDULERS:
            fail("lr_scheduler", f"one of {list(LR_SCHEDULERS)}")
        positive_ints = (
            "expansion",
            "k",
            "training_tokens",
            "batch_size",
            "dead_feature_window",
            "feature_sampling_window",
            "n_batches_for_norm_estimate",
            "max_batches_in_memory",
        )
        for key in positive_ints:
            if not _is_int(getattr(self, key)) or getattr(self, key) < 1:
                fail(key, "an integer >= 1")
        for key in ("seed", "lr_warm_up_steps", "lr_decay_steps", "l1_warm_up_steps"):
            if not _is_int(getattr(self, key)) or getattr(self, key) < 0:
                fail(key, "an integer >= 0")
        for key in ("lr", "l1_coefficient", "aux_loss_coefficient", "topk_threshold_lr", "adam_beta1", "adam_beta2"):
            value = getattr(self, key)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
                fail(key, "a finite number")
        if self.lr <= 0:
            fail("lr", "a number > 0")
        if self.l1_coefficient < 0 or self.aux_loss_coefficient < 0:
            fail("l1_coefficient" if self.l1_coefficient < 0 else "aux_loss_coefficient", "a number >= 0")
        if not 0 < self.topk_threshold_lr <= 1:
            fail("topk_threshold_lr", "a number in (0, 1]")
        if not (0 <= self.adam_beta1 < 1 and 0 <= self.adam_beta2 < 1):
            fail("adam_beta1" if not 0 <= self.adam_beta1 < 1 else "adam_beta2", "a number in [0, 1)")
        if self.lr_end is not None and (
            isinstance(self.lr_end, bool) or not isinstance(self.lr_end, (int, float)) or not self.lr_end > 0
        ):
            fail("lr_end", "null or a number > 0")
        if self.decoder_init_norm is not None and (
            isinstance(self.decoder_init_norm, bool)
            or not isinstance(self.decoder_init_norm, (int, float))
            or not self.decoder_init_norm > 0
        ):
            fail("decoder_init_norm", "null or a number > 0")
        for key in ("apply_b_dec_to_input", "rescale_acts_by_decoder_norm"):
            if not isinstance(getattr(self, key), bool):
                fail(key, "true or false")
        if self.training_tokens < self.batch_size:
            fail("training_tokens", f"at least one batch ({self.batch_size} tokens)")
        if self.lr_warm_up_steps + self.lr_decay_steps > self.n_steps:
            fail("lr_decay_steps", f"warm-up + decay steps <= the {self.n_steps} training steps")

    @property
    def n_steps(self) -> int:
        return self.training_tokens // self.batch_size

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> SAETrainingSpec:
        """Build from a config mapping; unknown keys and bad values give a one-line ``InputError``.

        Integral floats (YAML's ``2.0e+6``) are accepted for integer keys.
        """
        if not isinstance(values, Mapping):
            raise InputError(f"SAE spec: expected a mapping, got {type(values).__name__}")
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise InputError(f"SAE spec: unknown key(s) {unknown}; known keys are {sorted(known)}")
        int_keys = {f.name for f in dataclasses.fields(cls) if f.type in ("int", int)}
        cleaned = {}
        for key, value in values.items():
            if key in int_keys and isinstance(value, float) and value.is_integer():
                value = int(value)
            cleaned[key] = value
        return cls(**cleaned)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def d_sae(self, d_in: int) -> int:
        return self.expansion * d_in


def make_training_sae(spec: SAETrainingSpec, d_in: int, metadata: Mapping[str, Any] | None = None) -> TrainingSAE[Any]:
    """A freshly initialized sae-lens training SAE for ``spec`` (initialization draws from torch's global RNG)."""
    d_sae = spec.d_sae(d_in)
    if spec.architecture in ("topk", "batchtopk") and spec.k > d_sae:
        raise InputError(
            f"SAE spec: 'k' = {spec.k} exceeds the SAE width {d_sae} (expansion {spec.expansion} x d_in {d_in})"
        )
    common: dict[str, Any] = {
        "d_in": d_in,
        "d_sae": d_sae,
        "dtype": "float32",
        "device": "cpu",
        "apply_b_dec_to_input": spec.apply_b_dec_to_input,
        "normalize_activations": spec.normalize_activations,
        "decoder_init_norm": spec.decoder_init_norm,
        "metadata": SAEMetadata(**dict(metadata or {})),
    }
    if spec.architecture == "relu":
        return StandardTrainingSAE(
            StandardTrainingSAEConfig(
                **common, l1_coefficient=spec.l1_coefficient, l1_warm_up_steps=spec.l1_warm_up_steps
            )
        )
    topk_args = {
        "k": spec.k,
        "aux_loss_coefficient": spec.aux_loss_coefficient,
        "rescale_acts_by_decoder_norm": spec.rescale_acts_by_decoder_norm,
    }
    if spec.architecture == "topk":
        return TopKTrainingSAE(TopKTrainingSAEConfig(**common, **topk_args))
    return BatchTopKTrainingSAE(
        BatchTopKTrainingSAEConfig(**common, **topk_args, topk_threshold_lr=spec.topk_threshold_lr)
    )


def _trainer_config(spec: SAETrainingSpec, device: str) -> SAETrainerConfig:
    return SAETrainerConfig(
        total_training_samples=spec.n_steps * spec.batch_size,
        train_batch_size_samples=spec.batch_size,
        lr=spec.lr,
        # sae-lens asserts lr_end is set; its runner defaults it to lr / 10
        lr_end=spec.lr_end if spec.lr_end is not None else spec.lr / 10,
        lr_scheduler_name=spec.lr_scheduler,
        lr_warm_up_steps=spec.lr_warm_up_steps,
        lr_decay_steps=spec.lr_decay_steps,
        adam_beta1=spec.adam_beta1,
        adam_beta2=spec.adam_beta2,
        device=device,
        dead_feature_window=spec.dead_feature_window,
        feature_sampling_window=spec.feature_sampling_window,
        n_checkpoints=0,
        checkpoint_path=None,
        save_final_checkpoint=False,
        logger=LoggingConfig(log_to_wandb=False),
        n_batches_for_norm_estimate=spec.n_batches_for_norm_estimate,
    )


class _RecordingTrainer(SAETrainer):  # type: ignore[misc]
    """``SAETrainer`` that keeps the per-step losses (``step`` is its public per-batch seam)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.loss_history: list[dict[str, float]] = []

    def step(self, batch: torch.Tensor) -> TrainStepOutput:
        output = super().step(batch)
        losses = {"overall_loss": float(output.loss.detach())}
        losses.update({name: float(value.detach()) for name, value in output.losses.items()})
        self.loss_history.append(losses)
        return output


@dataclass
class TrainingResult:
    """A trained sae-lens training SAE (decoder norms folded) and its deterministic summary."""

    sae: TrainingSAE[Any]
    summary: dict[str, Any] = field(default_factory=dict)


def fit_sae(
    batches: Iterator[torch.Tensor],
    spec: SAETrainingSpec,
    d_in: int,
    *,
    metadata: Mapping[str, Any] | None = None,
    device: str = "cpu",
) -> TrainingResult:
    """Train an SAE for ``spec`` on ``batches`` with sae-lens' ``SAETrainer``; deterministic for a seed.

    Torch runs on one thread and the initialization is seeded with ``spec.seed``. After
    training, a TopK/BatchTopK SAE trained with ``rescale_acts_by_decoder_norm`` has its
    decoder norms folded into the encoder (sae-lens' own ``fold_W_dec_norm``, as it does
    before folding a whitening), so the returned training SAE and the saved inference
    SAE compute bit-identical codes.
    """
    with pinned_blas(1):
        torch.manual_seed(spec.seed)
        sae = make_training_sae(spec, d_in, metadata)
        trainer = _RecordingTrainer(cfg=_trainer_config(spec, device), sae=sae, data_provider=batches)
        trainer.fit()
        if spec.architecture in ("topk", "batchtopk") and sae.cfg.rescale_acts_by_decoder_norm:
            sae.fold_W_dec_norm()
            sae.cfg.rescale_acts_by_decoder_norm = False
    sae.eval()
    history = trainer.loss_history
    stride = max(1, len(history) // _LOSS_TRACE_POINTS)
    summary = {
        "architecture": spec.architecture,
        "d_in": d_in,
        "d_sae": sae.cfg.d_sae,
        "n_steps": trainer.n_training_steps,
        "n_tokens": trainer.n_training_samples,
        "final_losses": history[-1] if history else {},
        "loss_trace": [{"step": i + 1, **history[i]} for i in range(stride - 1, len(history), stride)],
        "training_window_l0": sae.cfg.metadata.l0,
        "training_dead_features": sae.cfg.metadata.num_dead_features,
        "spec": spec.to_dict(),
    }
    return TrainingResult(sae=sae, summary=summary)


SAE_CONFIG_FILENAME = "cfg.json"


def save_sae(sae: TrainingSAE[Any], out_dir: str | os.PathLike) -> Path:
    """Save with sae-lens' ``save_inference_model`` (``cfg.json`` + ``sae_weights.safetensors``).

    sae-lens writes ``cfg.json`` in its dict's insertion order, which differs between
    runs; it is rewritten with sorted keys so equal SAEs give byte-identical nodes
    (``SAE.load_from_disk`` reads it as a mapping, so the order does not matter to it).
    """
    out_dir = Path(out_dir)
    sae.save_inference_model(out_dir)
    config_path = out_dir / SAE_CONFIG_FILENAME
    write_json(config_path, read_json(config_path))
    return out_dir


def train_sae(
    cache_path: str | os.PathLike,
    spec: SAETrainingSpec,
    out_dir: str | os.PathLike,
    *,
    array: str = "train",
    progress: bool = True,
    metadata: Mapping[str, Any] | None = None,
    device: str = "cpu",
) -> dict[str, Any]:
    """Train an SAE on ``cache_path[array]`` and save it under ``out_dir`` for ``SAE.load_from_disk``.

    Writes ``out_dir/training_summary.json`` (steps, tokens, final losses, a loss trace,
    the spec; no wall time, so equal inputs give identical bytes) and returns that
    summary plus ``wall_time_s`` and ``stream`` (buffer statistics). ``progress``
    toggles a start/end line on stderr; sae-lens' trainer shows its own tqdm bar.
    """
    if not isinstance(spec, SAETrainingSpec):
        raise InputError(f"spec: expected an SAETrainingSpec, got {type(spec).__name__}")
    cache = open_training_cache(cache_path)
    source = cache.array(array)
    stream = stream_batches(source, spec.batch_size, seed=spec.seed, max_batches_in_memory=spec.max_batches_in_memory)
    started = time.perf_counter()
    if progress:
        print(
            f"training {spec.architecture} SAE d_in={cache.d_in} d_sae={spec.d_sae(cache.d_in)} "
            f"steps={spec.n_steps} on {cache.path}/{array}",
            file=sys.stderr,
        )
    result = fit_sae(stream, spec, cache.d_in, metadata=metadata, device=device)
    save_sae(result.sae, out_dir)
    write_json(Path(out_dir) / TRAINING_SUMMARY_FILENAME, result.summary)
    stream_stats = {
        "capacity_rows": stream.capacity_rows,
        "max_rows_buffered": stream.max_rows_buffered,
        "max_rows_read_at_once": stream.max_rows_read_at_once,
        "rows_read": stream.rows_read,
        "epochs_completed": stream.epoch,
    }
    return {**result.summary, "wall_time_s": time.perf_counter() - started, "stream": stream_stats}
