"""SAE versus skip-transcoder on the same MLP layer, same recipe, same token budget.

Paulo, Shabalin & Belrose (2025, "Transcoders beat sparse autoencoders for
interpretability") report that a skip-transcoder (input: what the MLP reads, target:
what the MLP writes, plus a linear skip path ``W_skip``) reconstructs the MLP output
about as well as an SAE trained on that output at similar sparsity. This module runs
that head-to-head on the demo LM:

* :func:`mlp_io` caches the MLP's input (``blocks.{L}.ln2.hook_normalized``) and output
  (``blocks.{L}.hook_mlp_out``) on BOS-led token windows, BOS rows dropped.
* :func:`train_pair` trains an sae-lens ``StandardSAE`` (mlp_out -> mlp_out) and an
  sae-lens ``SkipTranscoder`` (mlp_in -> mlp_out) with one loop, one loss form, one
  optimizer, one batch order, one seed, one width and one initialization.
* :func:`evaluate_pair` measures, on held-out rows and held-out windows, each model's
  explained variance of its own target, L0, dead fraction and spliced next-token
  loss (``hook_mlp_out`` replaced by the reconstruction), against the zero-ablated MLP,
  and the transcoder - SAE differences with paired, seeded bootstrap CIs.

Hook note: TransformerLens' ``ln2.hook_normalized`` is the layer-normed residual
*before* LayerNorm's elementwise affine (``w * x + b``); the MLP reads the affine image.
The transcoder's encoder (``W_enc``, ``b_enc``) and skip path (``W_skip``, ``b_dec``) are
affine in their input, so they absorb that fixed invertible map and lose nothing. In
Pythia/GPT-NeoX (parallel attention + MLP) ``ln2`` reads ``resid_pre``; in a sequential
block it reads ``resid_mid``. The hook holds the MLP's input either way.

Why a hand-written training loop: sae-lens trains SAEs (``SAETrainer`` over an
activation store or a tensor iterator) but ships no transcoder trainer, only the
inference classes ``Transcoder``/``SkipTranscoder``. Training both models in one loop
keeps the recipe identical by construction; the loop uses the classes' own
``encode``/``decode``/``forward_with_activations``, so what it returns are ordinary
sae-lens objects (``save_model``, ``SAE.load_from_disk``).

Recipe (both models): loss = ``sum_d (recon - target)^2`` averaged over the batch plus
``l1_coefficient * sum_i f_i * ||W_dec_i||`` averaged over the batch (sae-lens'
``StandardTrainingSAE`` loss); Adam at ``lr``; ``training_tokens // batch_size`` steps
over the same seeded row order; ``d_sae = expansion * d_model``; sae-lens' training
initialization drawn from a seeded generator (``W_dec`` kaiming-uniform rows at norm 0.1,
``W_enc = W_dec^T``, zero biases, zero ``W_skip``), so both models start from the same
dictionary. ``apply_b_dec_to_input`` is False for both: sae-lens forbids it for
transcoders (their ``b_dec`` lives in the output space), and turning it off for the SAE
keeps the two encoders of the same form. Each activation stream is scaled by one
constant so its mean squared row norm is ``d`` (sae-lens' ``expected_average_only_in``
convention), which makes ``l1_coefficient`` comparable across layers and streams; the
constants are folded into the weights after training, so the returned models act on
raw activations.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from sae_lens import SAE, StandardSAE, StandardSAEConfig
from sae_lens.saes.sae import SAEMetadata
from sae_lens.saes.transcoder import SkipTranscoder, SkipTranscoderConfig, Transcoder
from tqdm.auto import tqdm

from sae_difficulty.core.sae_metrics import (
    FiringAccumulator,
    ReconstructionAccumulator,
    dead_fraction,
    loss_recovered,
)
from sae_difficulty.evals.common import reject_unknown_keys
from sae_difficulty.modalities.llm.backbone import Backbone, check_layer
from sae_difficulty.modalities.llm.scoring import token_nll
from sae_difficulty.utils.errors import InputError
from sae_difficulty.utils.io import to_jsonable

MODEL_NAMES = ("sae", "skip_transcoder")
DIFFERENCE_METRICS = ("explained_variance", "l0", "delta_loss")
HEADLINE_CLAIM = (
    "skip-transcoders reconstruct as well as SAEs at similar sparsity while being more interpretable "
    "(Paulo, Shabalin & Belrose 2025, 'Transcoders beat sparse autoencoders for interpretability')"
)
# Rows encoded at once in evaluation, and sequences per LM forward pass when splicing.
_EVAL_ROWS = 4096
_SPLICE_BATCH = 16
# Bootstrap replicates are computed in blocks of at most this many (replicate x row) weights.
_BOOT_ELEMENTS = 2_000_000
# Points kept on each training curve.
_CURVE_POINTS = 50


def hook_names(layer: int) -> tuple[str, str]:
    """(MLP input hook, MLP output hook) of block ``layer``."""
    return f"blocks.{int(layer)}.ln2.hook_normalized", f"blocks.{int(layer)}.hook_mlp_out"


# --------------------------------------------------------------------------- config


def _require_int(name: str, value: Any, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise InputError(f"TranscoderComparisonConfig.{name}: expected an integer >= {minimum}, got {value!r}")


def _require_float(name: str, value: Any, *, positive: bool) -> None:
    ok = isinstance(value, (int, float, np.floating)) and not isinstance(value, bool) and math.isfinite(float(value))
    if not ok or (float(value) <= 0.0 if positive else float(value) < 0.0):
        bound = "> 0" if positive else ">= 0"
        raise InputError(f"TranscoderComparisonConfig.{name}: expected a finite number {bound}, got {value!r}")


@dataclass(frozen=True)
class TranscoderComparisonConfig:
    """One SAE-vs-skip-transcoder comparison at one MLP layer.

    ``layer``: the block whose MLP is studied. ``expansion``: d_sae / d_model for both
    models. ``l1_coefficient``: weight of ``sum_i f_i ||W_dec_i||`` on activations scaled
    to mean squared norm d. Default 1.0, from a sweep on the demo LM (d_model 48, both
    layers, default budget): 1e-3 leaves codes dense (L0 ~ 85-95 % of d_sae, EV ~ 0.96-0.98),
    1.0 gives the SAE EV ~ 0.85-0.89 at L0 ~ 30-50 % of d_sae with no dead features,
    2.0 starts killing SAE features (up to 17 % dead) and 5.0 collapses the SAE. ``lr``: Adam
    learning rate. ``training_tokens``/``batch_size``: token budget and rows per step
    (same for both). ``seed``: initialization, batch order and bootstrap.
    ``n_boot``: bootstrap replicates. ``splice_sequences``/``context_length``: how many
    held-out windows, and how many positions of each, the spliced loss uses.
    """

    layer: int
    expansion: int = 4
    l1_coefficient: float = 1.0
    lr: float = 1e-3
    training_tokens: int = 65536
    batch_size: int = 256
    seed: int = 0
    n_boot: int = 1000
    splice_sequences: int = 32
    context_length: int = 64

    def __post_init__(self) -> None:
        _require_int("layer", self.layer, 0)
        _require_int("expansion", self.expansion, 1)
        _require_float("l1_coefficient", self.l1_coefficient, positive=False)
        _require_float("lr", self.lr, positive=True)
        _require_int("batch_size", self.batch_size, 1)
        _require_int("training_tokens", self.training_tokens, int(self.batch_size))
        _require_int("seed", self.seed, 0)
        _require_int("n_boot", self.n_boot, 1)
        _require_int("splice_sequences", self.splice_sequences, 1)
        _require_int("context_length", self.context_length, 2)

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> TranscoderComparisonConfig:
        """Build from a mapping (e.g. a YAML block); unknown keys are a one-line error."""
        if not isinstance(values, Mapping):
            raise InputError(f"TranscoderComparisonConfig: expected a mapping, got {type(values).__name__}")
        reject_unknown_keys(values, (f.name for f in fields(cls)), "TranscoderComparisonConfig")
        if "layer" not in values:
            raise InputError("TranscoderComparisonConfig: missing required key 'layer'")
        return cls(**dict(values))

    @property
    def training_steps(self) -> int:
        return int(self.training_tokens) // int(self.batch_size)


# --------------------------------------------------------------------------- activations


def _check_windows(windows: Any, name: str, bos_id: int | None = None) -> torch.Tensor:
    if not isinstance(windows, torch.Tensor) or windows.ndim != 2 or windows.dtype != torch.long:
        shape = tuple(windows.shape) if hasattr(windows, "shape") else type(windows).__name__
        raise InputError(f"{name}: expected a torch.LongTensor [n_windows, context], got {shape}")
    if windows.shape[0] == 0 or windows.shape[1] < 2:
        raise InputError(f"{name}: expected at least one window of >= 2 tokens, got shape {tuple(windows.shape)}")
    if bos_id is not None and not bool((windows[:, 0] == bos_id).all()):
        raise InputError(f"{name}: every window must start with BOS (id {bos_id})")
    return windows


@torch.no_grad()
def mlp_io(backbone: Backbone, layer: int, windows: torch.Tensor, batch_size: int) -> tuple[np.ndarray, np.ndarray]:
    """MLP input and output rows of block ``layer`` on BOS-led ``windows`` [n, ctx].

    Returns ``(mlp_in, mlp_out)``, float32 ``[n * (ctx - 1), d_model]`` each: the
    ``ln2.hook_normalized`` and ``hook_mlp_out`` activations at every non-BOS position,
    window by window in order (row ``i * (ctx - 1) + p - 1`` is window ``i``, position ``p``).
    """
    check_layer(backbone, layer)
    windows = _check_windows(windows, "windows", backbone.bos_id)
    if windows.shape[1] > backbone.n_ctx:
        raise InputError(f"windows: context {windows.shape[1]} exceeds the model's n_ctx={backbone.n_ctx}")
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise InputError(f"batch_size: expected an integer >= 1, got {batch_size!r}")
    hook_in, hook_out = hook_names(layer)
    inputs, outputs = [], []
    for start in tqdm(range(0, len(windows), batch_size), desc=f"mlp io L{layer}", file=sys.stderr, mininterval=5.0):
        tokens = windows[start : start + batch_size].to(backbone.device)
        _, cache = backbone.model.run_with_cache(
            tokens, names_filter=lambda name: name in (hook_in, hook_out), stop_at_layer=int(layer) + 1
        )
        for store, hook in ((inputs, hook_in), (outputs, hook_out)):
            rows = cache[hook][:, 1:]
            store.append(rows.reshape(-1, rows.shape[-1]).float().cpu().numpy())
    return np.concatenate(inputs), np.concatenate(outputs)


def _check_rows(name: str, values: Any, rows: int | None = None, width: int | None = None) -> np.ndarray:
    array = np.asarray(values, dtype=np.float32)
    if array.ndim != 2 or array.shape[0] == 0:
        raise InputError(f"{name}: expected a non-empty 2-D array [rows, d], got shape {array.shape}")
    if rows is not None and array.shape[0] != rows:
        raise InputError(f"{name}: {array.shape[0]} rows, expected {rows} (one per row of the paired array)")
    if width is not None and array.shape[1] != width:
        raise InputError(f"{name}: width {array.shape[1]}, expected {width}")
    if not np.all(np.isfinite(array)):
        raise InputError(f"{name}: contains non-finite values")
    return array


# --------------------------------------------------------------------------- training


def _norm_scaling_factor(rows: np.ndarray, name: str) -> float:
    """The constant that makes the mean squared row norm equal the width (sae-lens' convention)."""
    mean_sq = float(np.mean(np.einsum("ij,ij->i", rows.astype(np.float64), rows.astype(np.float64))))
    if mean_sq <= 0.0:
        raise InputError(f"{name}: all rows are zero; nothing to reconstruct")
    return math.sqrt(rows.shape[1] / mean_sq)


# sae-lens' TrainingSAEConfig.decoder_init_norm default (Anthropic's April 2024 update):
# decoder rows start at this norm, so the first reconstructions are small, not d_sae/2
# unit-size features piled on top of each other.
DECODER_INIT_NORM = 0.1


@torch.no_grad()
def _initialize(model: SAE[Any], seed: int) -> None:
    """sae-lens' training init from a seeded generator (``TrainingSAE.initialize_weights``).

    Kaiming-uniform ``W_dec`` rows rescaled to norm ``DECODER_INIT_NORM``,
    ``W_enc = W_dec^T``, zero biases, zero ``W_skip``. The same seed gives both models the
    same dictionary and encoder. Where the widths differ (a transcoder between unequal
    spaces) ``W_enc`` is drawn independently with the same scheme.
    """
    generator = torch.Generator().manual_seed(int(seed))

    def unit_rows(rows: int, width: int) -> torch.Tensor:
        # nn.init.kaiming_uniform_ on a [rows, width] tensor: fan_in = width, gain sqrt(2)
        bound = math.sqrt(6.0 / width)
        draw = torch.empty(rows, width).uniform_(-bound, bound, generator=generator)
        return draw / draw.norm(dim=1, keepdim=True)

    d_sae, d_out = model.W_dec.shape
    d_in = model.W_enc.shape[0]
    w_dec = DECODER_INIT_NORM * unit_rows(d_sae, d_out)
    w_enc = w_dec.T if d_in == d_out else DECODER_INIT_NORM * unit_rows(d_sae, d_in).T
    model.W_dec.copy_(w_dec)
    model.W_enc.copy_(w_enc.contiguous())
    model.b_enc.zero_()
    model.b_dec.zero_()
    if isinstance(model, SkipTranscoder):
        model.W_skip.zero_()


def _forward(model: SAE[Any], source: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(reconstruction of the target, codes) through the model's own sae-lens methods.

    A transcoder's ``decode`` leaves out the skip path (only ``forward`` adds
    ``x @ W_skip.T``), so transcoders go through ``forward_with_activations``.
    """
    if isinstance(model, Transcoder):
        return model.forward_with_activations(source)
    codes = model.encode(source)
    return model.decode(codes), codes


def _batch_order(n_rows: int, steps: int, batch_size: int, seed: int) -> torch.Tensor:
    """Row indices of every step [steps, batch_size]: seeded epochs of random permutations."""
    generator = torch.Generator().manual_seed(int(seed))
    needed = steps * batch_size
    epochs = [torch.randperm(n_rows, generator=generator) for _ in range(-(-needed // n_rows))]
    return torch.cat(epochs)[:needed].reshape(steps, batch_size)


def _fit(model: SAE[Any], sources: torch.Tensor, targets: torch.Tensor, order: torch.Tensor, config: TranscoderComparisonConfig, desc: str) -> dict[str, Any]:
    """Adam on MSE + l1 * sum_i f_i ||W_dec_i||; returns the training curve and final losses."""
    optimizer = torch.optim.Adam(model.parameters(), lr=float(config.lr))
    log_every = max(1, len(order) // _CURVE_POINTS)
    curve: list[dict[str, float]] = []
    sums = np.zeros(4)  # mse, sparsity penalty, loss, l0
    model.train()
    for step, index in enumerate(tqdm(order, desc=desc, file=sys.stderr, mininterval=5.0), start=1):
        target = targets[index]
        recon, codes = _forward(model, sources[index])
        mse = (recon - target).pow(2).sum(dim=-1).mean()
        sparsity = (codes * model.W_dec.norm(dim=1)).sum(dim=-1).mean()
        loss = mse + float(config.l1_coefficient) * sparsity
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        with torch.no_grad():
            sums += [float(mse), float(sparsity), float(loss), float((codes > 0).sum(dim=-1).float().mean())]
        if step % log_every == 0 or step == len(order):
            count = step - (curve[-1]["step"] if curve else 0)
            mean = sums / count
            curve.append({"step": step, "mse": mean[0], "sparsity": mean[1], "loss": mean[2], "l0": mean[3]})
            sums[:] = 0.0
    model.eval()
    return {
        "curve": curve,
        "initial_loss": curve[0]["loss"],
        "final_loss": curve[-1]["loss"],
        "final_mse": curve[-1]["mse"],
        "final_l0": curve[-1]["l0"],
    }


@torch.no_grad()
def _fold_scaling(sae: StandardSAE, transcoder: SkipTranscoder, scale_in: float, scale_out: float) -> None:
    """Make models trained on scaled streams act on raw ones.

    SAE: sae-lens' own fold (W_enc * s, W_dec / s, b_dec / s). Transcoder, input scaled
    by s_in and target by s_out: W_enc * s_in, W_dec / s_out, b_dec / s_out,
    W_skip * s_in / s_out.
    """
    sae.fold_activation_norm_scaling_factor(scale_out)
    transcoder.W_enc.mul_(scale_in)
    transcoder.W_dec.div_(scale_out)
    transcoder.b_dec.div_(scale_out)
    transcoder.W_skip.mul_(scale_in / scale_out)


def train_pair(
    mlp_in_train: np.ndarray, mlp_out_train: np.ndarray, config: TranscoderComparisonConfig
) -> tuple[StandardSAE, SkipTranscoder, dict[str, Any]]:
    """Train a ``StandardSAE`` (mlp_out -> mlp_out) and a ``SkipTranscoder`` (mlp_in -> mlp_out).

    Same loss, optimizer, lr, batch order, token budget, width and initialization (module
    docstring). Returns both models in eval mode on raw activations, and a dict with
    ``steps``, ``tokens``, ``d_sae``, ``scaling`` (the stream constants folded in) and,
    per model, the training ``curve`` (mean mse / sparsity / loss / l0 per interval, in
    scaled units), ``initial_loss``, ``final_loss``, ``final_mse``, ``final_l0``.
    """
    if not isinstance(config, TranscoderComparisonConfig):
        raise InputError(f"config: expected a TranscoderComparisonConfig, got {type(config).__name__}")
    mlp_out = _check_rows("mlp_out_train", mlp_out_train)
    mlp_in = _check_rows("mlp_in_train", mlp_in_train, rows=mlp_out.shape[0])
    d_in, d_out = mlp_in.shape[1], mlp_out.shape[1]
    d_sae = int(config.expansion) * d_out
    scale_in = _norm_scaling_factor(mlp_in, "mlp_in_train")
    scale_out = _norm_scaling_factor(mlp_out, "mlp_out_train")
    hook_in, hook_out = hook_names(config.layer)

    sae = StandardSAE(
        StandardSAEConfig(
            d_in=d_out, d_sae=d_sae, apply_b_dec_to_input=False, metadata=SAEMetadata(hook_name=hook_out)
        )
    )
    transcoder = SkipTranscoder(
        SkipTranscoderConfig(
            d_in=d_in,
            d_sae=d_sae,
            d_out=d_out,
            apply_b_dec_to_input=False,
            metadata=SAEMetadata(hook_name=hook_in, hook_name_out=hook_out),
        )
    )
    for model in (sae, transcoder):
        _initialize(model, config.seed)

    sources_in = torch.from_numpy(mlp_in) * scale_in
    targets = torch.from_numpy(mlp_out) * scale_out
    order = _batch_order(len(targets), config.training_steps, int(config.batch_size), config.seed)
    training = {
        "steps": config.training_steps,
        "tokens": config.training_steps * int(config.batch_size),
        "d_sae": d_sae,
        "scaling": {"mlp_in": scale_in, "mlp_out": scale_out},
        "sae": _fit(sae, targets, targets, order, config, "train SAE"),
        "skip_transcoder": _fit(transcoder, sources_in, targets, order, config, "train skip-transcoder"),
    }
    _fold_scaling(sae, transcoder, scale_in, scale_out)
    return sae, transcoder, training


# --------------------------------------------------------------------------- evaluation


@dataclass(frozen=True)
class TranscoderComparisonResult:
    """Per-model metrics and transcoder - SAE differences (see :data:`RESULT_SCHEMA`).

    ``models[name]`` for name in ``MODEL_NAMES``: ``architecture``, ``explained_variance``
    (+ ``_ci_low``/``_ci_high``), ``fvu``, ``mse``, ``l0`` (+ CI), ``dead_fraction``,
    ``loss_spliced``, ``delta_loss`` (spliced - clean nats, + CI), ``fraction_recovered``.
    ``differences[metric]`` for metric in ``DIFFERENCE_METRICS``: ``value``, ``ci_low``,
    ``ci_high`` of transcoder - SAE. CIs are 95 % percentile intervals of a paired
    bootstrap: held-out rows for EV and L0, held-out sequences for the losses. Rows of
    one window are correlated, so the row intervals are narrower than a resampling of
    windows would give; read them as the sampling error of the evaluation rows.
    """

    config: dict[str, Any]
    d_model: int
    d_sae: int
    n_heldout_rows: int
    n_splice_sequences: int
    n_splice_tokens: int
    loss_clean: float
    loss_zero_ablation: float
    models: dict[str, dict[str, Any]]
    differences: dict[str, dict[str, float]]
    training: dict[str, Any] | None = None
    hooks: dict[str, str] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """JSON-able, deterministic (sorted on write by ``sae_difficulty.utils.io``), validates against RESULT_SCHEMA."""
        out = asdict(self)
        out["eval"] = "transcoder_comparison"
        out["delta_loss_zero_ablation"] = self.loss_zero_ablation - self.loss_clean
        return to_jsonable(out)

    def table(self) -> pd.DataFrame:
        """One row per (model, metric): value and CI; the ``difference`` rows are transcoder - SAE."""
        rows = []
        for name in MODEL_NAMES:
            stats = self.models[name]
            for metric in ("explained_variance", "fvu", "l0", "dead_fraction", "delta_loss", "fraction_recovered"):
                rows.append(
                    {
                        "model": name,
                        "metric": metric,
                        "value": stats[metric],
                        "ci_low": stats.get(f"{metric}_ci_low"),
                        "ci_high": stats.get(f"{metric}_ci_high"),
                    }
                )
        rows.append(
            {"model": "zero_ablation", "metric": "delta_loss", "value": self.loss_zero_ablation - self.loss_clean, "ci_low": None, "ci_high": None}
        )
        for metric in DIFFERENCE_METRICS:
            rows.append({"model": "difference", "metric": metric, **self.differences[metric]})
        frame = pd.DataFrame(rows, columns=["model", "metric", "value", "ci_low", "ci_high"])
        return frame.astype({"value": float, "ci_low": float, "ci_high": float})


_NUMBER = {"type": "number"}
_NULLABLE_NUMBER = {"type": ["number", "null"]}
_INTERVAL = {
    "type": "object",
    "additionalProperties": False,
    "required": ["value", "ci_low", "ci_high"],
    "properties": {"value": _NUMBER, "ci_low": _NULLABLE_NUMBER, "ci_high": _NULLABLE_NUMBER},
}
_MODEL_STATS = {
    "type": "object",
    "additionalProperties": False,
    "required": [
        "architecture",
        "explained_variance",
        "explained_variance_ci_low",
        "explained_variance_ci_high",
        "fvu",
        "mse",
        "l0",
        "l0_ci_low",
        "l0_ci_high",
        "dead_fraction",
        "loss_spliced",
        "delta_loss",
        "delta_loss_ci_low",
        "delta_loss_ci_high",
        "fraction_recovered",
    ],
    "properties": {
        "architecture": {"type": "string"},
        "explained_variance": _NUMBER,
        "explained_variance_ci_low": _NULLABLE_NUMBER,
        "explained_variance_ci_high": _NULLABLE_NUMBER,
        "fvu": _NUMBER,
        "mse": _NUMBER,
        "l0": _NUMBER,
        "l0_ci_low": _NULLABLE_NUMBER,
        "l0_ci_high": _NULLABLE_NUMBER,
        "dead_fraction": _NUMBER,
        "loss_spliced": _NUMBER,
        "delta_loss": _NUMBER,
        "delta_loss_ci_low": _NULLABLE_NUMBER,
        "delta_loss_ci_high": _NULLABLE_NUMBER,
        "fraction_recovered": _NULLABLE_NUMBER,
    },
}
RESULT_SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "title": "TranscoderComparisonResult",
    "type": "object",
    "additionalProperties": False,
    "required": [
        "eval",
        "config",
        "d_model",
        "d_sae",
        "n_heldout_rows",
        "n_splice_sequences",
        "n_splice_tokens",
        "loss_clean",
        "loss_zero_ablation",
        "delta_loss_zero_ablation",
        "models",
        "differences",
        "training",
        "hooks",
    ],
    "properties": {
        "eval": {"const": "transcoder_comparison"},
        "config": {
            "type": "object",
            "additionalProperties": False,
            "required": [f.name for f in fields(TranscoderComparisonConfig)],
            "properties": {
                "layer": {"type": "integer", "minimum": 0},
                "expansion": {"type": "integer", "minimum": 1},
                "l1_coefficient": {"type": "number", "minimum": 0},
                "lr": {"type": "number", "exclusiveMinimum": 0},
                "training_tokens": {"type": "integer", "minimum": 1},
                "batch_size": {"type": "integer", "minimum": 1},
                "seed": {"type": "integer", "minimum": 0},
                "n_boot": {"type": "integer", "minimum": 1},
                "splice_sequences": {"type": "integer", "minimum": 1},
                "context_length": {"type": "integer", "minimum": 2},
            },
        },
        "d_model": {"type": "integer", "minimum": 1},
        "d_sae": {"type": "integer", "minimum": 1},
        "n_heldout_rows": {"type": "integer", "minimum": 1},
        "n_splice_sequences": {"type": "integer", "minimum": 1},
        "n_splice_tokens": {"type": "integer", "minimum": 1},
        "loss_clean": _NUMBER,
        "loss_zero_ablation": _NUMBER,
        "delta_loss_zero_ablation": _NUMBER,
        "models": {
            "type": "object",
            "additionalProperties": False,
            "required": list(MODEL_NAMES),
            "properties": {name: _MODEL_STATS for name in MODEL_NAMES},
        },
        "differences": {
            "type": "object",
            "additionalProperties": False,
            "required": list(DIFFERENCE_METRICS),
            "properties": {metric: _INTERVAL for metric in DIFFERENCE_METRICS},
        },
        "training": {"type": ["object", "null"]},
        "hooks": {
            "type": "object",
            "additionalProperties": False,
            "required": ["mlp_in", "mlp_out"],
            "properties": {"mlp_in": {"type": "string"}, "mlp_out": {"type": "string"}},
        },
    },
}


def _check_models(sae: Any, transcoder: Any, d_in: int, d_out: int) -> None:
    if not isinstance(sae, SAE) or isinstance(sae, Transcoder):
        raise InputError(f"sae: expected an sae-lens SAE (e.g. StandardSAE), got {type(sae).__name__}")
    if not isinstance(transcoder, Transcoder):
        raise InputError(f"transcoder: expected an sae-lens Transcoder (e.g. SkipTranscoder), got {type(transcoder).__name__}")
    if int(sae.cfg.d_in) != d_out:
        raise InputError(f"sae: d_in={sae.cfg.d_in} does not match the MLP output width {d_out}")
    if int(transcoder.cfg.d_in) != d_in or int(transcoder.cfg.d_out) != d_out:
        raise InputError(
            f"transcoder: maps {transcoder.cfg.d_in} -> {transcoder.cfg.d_out}, expected {d_in} -> {d_out} (MLP input -> output)"
        )
    if int(sae.cfg.d_sae) != int(transcoder.cfg.d_sae):
        raise InputError(f"transcoder: d_sae={transcoder.cfg.d_sae} differs from the SAE's {sae.cfg.d_sae}; compare equal widths")


@torch.no_grad()
def _row_metrics(model: SAE[Any], sources: np.ndarray, targets: np.ndarray) -> dict[str, Any]:
    """Streamed reconstruction/sparsity metrics plus the per-row SSE and L0 the bootstrap needs."""
    reconstruction = ReconstructionAccumulator()
    firing = FiringAccumulator(int(model.cfg.d_sae))
    sse = np.empty(len(targets))
    l0_rows = np.empty(len(targets))
    for start in range(0, len(targets), _EVAL_ROWS):
        stop = start + _EVAL_ROWS
        recon, codes = _forward(model, torch.from_numpy(sources[start:stop]))
        recon_np, codes_np = recon.float().numpy(), codes.float().numpy()
        reconstruction.update(targets[start:stop], recon_np)
        firing.update(codes_np)
        residual = targets[start:stop].astype(np.float64) - recon_np
        sse[start:stop] = np.einsum("ij,ij->i", residual, residual)
        l0_rows[start:stop] = np.count_nonzero(codes_np, axis=1)
    summary = reconstruction.result()
    return {
        "explained_variance": summary["explained_variance"],
        "fvu": summary["fvu"],
        "mse": summary["mse"],
        "l0": firing.mean_l0(),
        "dead_fraction": dead_fraction(firing.frequencies()),
        "sse_rows": sse,
        "l0_rows": l0_rows,
    }


def _bootstrap_counts(rng: np.random.Generator, replicates: int, n: int) -> np.ndarray:
    """How often each of ``n`` items is drawn in each of ``replicates`` resamples [replicates, n]."""
    draws = rng.integers(0, n, size=(replicates, n)) + (np.arange(replicates) * n)[:, None]
    return np.bincount(draws.ravel(), minlength=replicates * n).reshape(replicates, n).astype(np.float64)


def _percentile_interval(values: np.ndarray) -> tuple[float | None, float | None]:
    finite = values[np.isfinite(values)]
    if finite.size == 0:
        return None, None
    low, high = np.percentile(finite, [2.5, 97.5])
    return float(low), float(high)


def _row_bootstrap(targets: np.ndarray, per_model: dict[str, dict[str, Any]], n_boot: int, seed: int) -> dict[str, np.ndarray]:
    """Paired bootstrap over held-out rows: replicates of each model's EV and L0 and of their differences.

    Both models see the same resampled rows; the total variance is recomputed per resample
    (resampled mean), on targets centred once so the float64 sums do not cancel.
    """
    centred = targets.astype(np.float64) - targets.astype(np.float64).mean(axis=0)
    sq_norms = np.einsum("ij,ij->i", centred, centred)
    n = len(centred)
    rng = np.random.default_rng([int(seed), 0])
    out: dict[str, list[np.ndarray]] = {key: [] for key in ("ev_sae", "ev_skip_transcoder", "l0_sae", "l0_skip_transcoder")}
    block = max(1, _BOOT_ELEMENTS // n)
    for start in range(0, n_boot, block):
        counts = _bootstrap_counts(rng, min(block, n_boot - start), n)
        resampled_sum = counts @ centred
        sst = counts @ sq_norms - np.einsum("ij,ij->i", resampled_sum, resampled_sum) / n
        for name in MODEL_NAMES:
            with np.errstate(divide="ignore", invalid="ignore"):
                out[f"ev_{name}"].append(1.0 - (counts @ per_model[name]["sse_rows"]) / sst)
            out[f"l0_{name}"].append(counts @ per_model[name]["l0_rows"] / n)
    return {key: np.concatenate(values) for key, values in out.items()}


def _sequence_bootstrap(per_sequence: dict[str, np.ndarray], n_boot: int, seed: int) -> dict[str, np.ndarray]:
    """Paired bootstrap over spliced sequences: replicates of each model's mean Δloss (equal-length windows)."""
    n = len(per_sequence["clean"])
    rng = np.random.default_rng([int(seed), 1])
    replicates: dict[str, list[np.ndarray]] = {name: [] for name in MODEL_NAMES}
    block = max(1, _BOOT_ELEMENTS // n)
    for start in range(0, n_boot, block):
        counts = _bootstrap_counts(rng, min(block, n_boot - start), n)
        for name in MODEL_NAMES:
            replicates[name].append(counts @ (per_sequence[name] - per_sequence["clean"]) / n)
    return {name: np.concatenate(values) for name, values in replicates.items()}


@torch.no_grad()
def _spliced_losses(backbone: Backbone, layer: int, sae: SAE[Any], transcoder: Transcoder, windows: torch.Tensor) -> dict[str, np.ndarray]:
    """Per-sequence mean next-token NLL: clean, each model spliced into ``hook_mlp_out``, MLP zeroed.

    Positions > 0 are replaced (BOS kept). The transcoder reads ``ln2.hook_normalized``
    captured earlier in the same forward pass, so it sees exactly what the MLP saw.
    """
    hook_in, hook_out = hook_names(layer)
    captured: dict[str, torch.Tensor] = {}

    def capture_input(activation: torch.Tensor, hook: Any) -> None:
        captured["mlp_in"] = activation

    def splice_with(reconstruct_fn):
        def hook_fn(mlp_out: torch.Tensor, hook: Any) -> torch.Tensor:
            patched = mlp_out.clone()
            patched[:, 1:] = reconstruct_fn(mlp_out).to(patched.dtype)
            return patched

        return hook_fn

    def sae_reconstruction(mlp_out: torch.Tensor) -> torch.Tensor:
        return _forward(sae, mlp_out[:, 1:].to(sae.dtype))[0]

    def transcoder_reconstruction(mlp_out: torch.Tensor) -> torch.Tensor:
        return _forward(transcoder, captured["mlp_in"][:, 1:].to(transcoder.dtype))[0]

    def zero(mlp_out: torch.Tensor) -> torch.Tensor:
        return torch.zeros_like(mlp_out[:, 1:])

    runs = {
        "clean": [],
        "sae": [(hook_out, splice_with(sae_reconstruction))],
        "skip_transcoder": [(hook_in, capture_input), (hook_out, splice_with(transcoder_reconstruction))],
        "zero_ablation": [(hook_out, splice_with(zero))],
    }
    losses: dict[str, list[np.ndarray]] = {name: [] for name in runs}
    for start in tqdm(range(0, len(windows), _SPLICE_BATCH), desc=f"spliced loss L{layer}", file=sys.stderr, mininterval=5.0):
        tokens = windows[start : start + _SPLICE_BATCH].to(backbone.device)
        for name, hooks in runs.items():
            captured.clear()
            logits = backbone.model.run_with_hooks(tokens, fwd_hooks=hooks)
            losses[name].append(token_nll(logits, tokens).double().mean(dim=1).cpu().numpy())
    return {name: np.concatenate(values) for name, values in losses.items()}


def evaluate_pair(
    sae: SAE[Any],
    transcoder: Transcoder,
    mlp_in_heldout: np.ndarray,
    mlp_out_heldout: np.ndarray,
    backbone: Backbone,
    splice_windows: torch.Tensor,
    config: TranscoderComparisonConfig,
    training: Mapping[str, Any] | None = None,
) -> TranscoderComparisonResult:
    """Head-to-head on held-out data: each model on its own target, spliced into the LM.

    ``mlp_in_heldout``/``mlp_out_heldout``: paired rows from :func:`mlp_io` on held-out
    windows. ``splice_windows``: BOS-led held-out windows; the first
    ``config.splice_sequences`` windows, cut to ``config.context_length`` positions, are
    used. ``training``: the dict from :func:`train_pair`, stored in the result if given.
    """
    if not isinstance(config, TranscoderComparisonConfig):
        raise InputError(f"config: expected a TranscoderComparisonConfig, got {type(config).__name__}")
    check_layer(backbone, config.layer)
    targets = _check_rows("mlp_out_heldout", mlp_out_heldout, width=backbone.d_model)
    sources = _check_rows("mlp_in_heldout", mlp_in_heldout, rows=targets.shape[0], width=backbone.d_model)
    _check_models(sae, transcoder, sources.shape[1], targets.shape[1])
    windows = _check_windows(splice_windows, "splice_windows", backbone.bos_id)
    if windows.shape[0] < config.splice_sequences or windows.shape[1] < config.context_length:
        raise InputError(
            f"splice_windows: shape {tuple(windows.shape)} is smaller than "
            f"[splice_sequences={config.splice_sequences}, context_length={config.context_length}]"
        )
    if config.context_length > backbone.n_ctx:
        raise InputError(f"context_length={config.context_length} exceeds the model's n_ctx={backbone.n_ctx}")
    windows = windows[: config.splice_sequences, : config.context_length]

    sae.eval()
    transcoder.eval()
    per_model = {"sae": _row_metrics(sae, targets, targets), "skip_transcoder": _row_metrics(transcoder, sources, targets)}
    row_boot = _row_bootstrap(targets, per_model, config.n_boot, config.seed)
    per_sequence = _spliced_losses(backbone, config.layer, sae, transcoder, windows)
    sequence_boot = _sequence_bootstrap(per_sequence, config.n_boot, config.seed)

    loss_clean = float(per_sequence["clean"].mean())
    loss_zero = float(per_sequence["zero_ablation"].mean())
    models: dict[str, dict[str, Any]] = {}
    for name, model in (("sae", sae), ("skip_transcoder", transcoder)):
        stats = per_model[name]
        recovered = loss_recovered(loss_clean, float(per_sequence[name].mean()), loss_zero)
        ev_low, ev_high = _percentile_interval(row_boot[f"ev_{name}"])
        l0_low, l0_high = _percentile_interval(row_boot[f"l0_{name}"])
        loss_low, loss_high = _percentile_interval(sequence_boot[name])
        models[name] = {
            "architecture": model.cfg.architecture(),
            "explained_variance": stats["explained_variance"],
            "explained_variance_ci_low": ev_low,
            "explained_variance_ci_high": ev_high,
            "fvu": stats["fvu"],
            "mse": stats["mse"],
            "l0": stats["l0"],
            "l0_ci_low": l0_low,
            "l0_ci_high": l0_high,
            "dead_fraction": stats["dead_fraction"],
            "loss_spliced": recovered["loss_spliced"],
            "delta_loss": recovered["delta"],
            "delta_loss_ci_low": loss_low,
            "delta_loss_ci_high": loss_high,
            "fraction_recovered": recovered["fraction_recovered"],
        }

    def difference(metric: str, replicates: np.ndarray) -> dict[str, Any]:
        low, high = _percentile_interval(replicates)
        value = float(models["skip_transcoder"][metric] - models["sae"][metric])
        return {"value": value, "ci_low": low, "ci_high": high}

    differences = {
        "explained_variance": difference("explained_variance", row_boot["ev_skip_transcoder"] - row_boot["ev_sae"]),
        "l0": difference("l0", row_boot["l0_skip_transcoder"] - row_boot["l0_sae"]),
        "delta_loss": difference("delta_loss", sequence_boot["skip_transcoder"] - sequence_boot["sae"]),
    }
    hook_in, hook_out = hook_names(config.layer)
    return TranscoderComparisonResult(
        config=asdict(config),
        d_model=int(targets.shape[1]),
        d_sae=int(sae.cfg.d_sae),
        n_heldout_rows=int(targets.shape[0]),
        n_splice_sequences=int(windows.shape[0]),
        n_splice_tokens=int(windows.shape[0] * (windows.shape[1] - 1)),
        loss_clean=loss_clean,
        loss_zero_ablation=loss_zero,
        models=models,
        differences=differences,
        training=to_jsonable(dict(training)) if training is not None else None,
        hooks={"mlp_in": hook_in, "mlp_out": hook_out},
    )


# --------------------------------------------------------------------------- ledger, plot, persistence


def headline(result: TranscoderComparisonResult) -> dict[str, Any]:
    """The ledger number: held-out explained variance of the skip-transcoder minus the SAE's (null 0)."""
    ev = result.differences["explained_variance"]
    return {
        "metric": "explained_variance_difference_transcoder_minus_sae",
        "value": float(ev["value"]),
        "ci_low": ev["ci_low"],
        "ci_high": ev["ci_high"],
        "null": 0.0,
        "claim": HEADLINE_CLAIM,
    }


def _error_bars(value: float, low: float | None, high: float | None) -> list[float]:
    if low is None or high is None:
        return [0.0, 0.0]
    return [max(value - low, 0.0), max(high - value, 0.0)]


def plot_transcoder_comparison(result: TranscoderComparisonResult, path: str | Path) -> Path:
    """Bars per metric (EV, L0, Δloss) for SAE and skip-transcoder with 95 % CIs, plus the differences."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels = {"sae": "SAE", "skip_transcoder": "skip-transcoder"}
    colors = {"sae": "tab:blue", "skip_transcoder": "tab:orange"}
    titles = {"explained_variance": "explained variance", "l0": "L0", "delta_loss": "Δloss (nats)"}
    figure, axes = plt.subplots(1, 4, figsize=(14, 3.6))
    for axis, metric in zip(axes[:3], DIFFERENCE_METRICS):
        for position, name in enumerate(MODEL_NAMES):
            stats = result.models[name]
            value = stats[metric]
            errors = _error_bars(value, stats[f"{metric}_ci_low"], stats[f"{metric}_ci_high"])
            axis.bar(position, value, color=colors[name], yerr=np.array(errors)[:, None], capsize=4)
        if metric == "delta_loss":
            axis.axhline(result.loss_zero_ablation - result.loss_clean, color="grey", linestyle="--", label="MLP zeroed")
            axis.legend(fontsize=8)
        axis.set_xticks(range(len(MODEL_NAMES)), [labels[name] for name in MODEL_NAMES])
        axis.set_title(titles[metric])
    diff_axis = axes[3]
    for position, metric in enumerate(DIFFERENCE_METRICS):
        diff = result.differences[metric]
        errors = _error_bars(diff["value"], diff["ci_low"], diff["ci_high"])
        diff_axis.errorbar(position, diff["value"], yerr=np.array(errors)[:, None], fmt="o", color="black", capsize=4)
    diff_axis.axhline(0.0, color="grey", linewidth=0.8)
    diff_axis.set_xticks(range(len(DIFFERENCE_METRICS)), ["ΔEV", "ΔL0", "ΔΔloss"])
    diff_axis.set_title("transcoder − SAE")
    figure.suptitle(f"layer {result.config['layer']} MLP, d_sae={result.d_sae}, {result.n_heldout_rows} held-out rows")
    figure.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=120)
    plt.close(figure)
    return path


def save_pair(sae: StandardSAE, transcoder: SkipTranscoder, out_dir: str | Path) -> dict[str, Path]:
    """Save both with sae-lens ``save_model`` into ``out_dir/sae`` and ``out_dir/skip_transcoder``."""
    if not isinstance(sae, SAE) or isinstance(sae, Transcoder) or not isinstance(transcoder, SkipTranscoder):
        raise InputError(f"save_pair: expected (SAE, SkipTranscoder), got ({type(sae).__name__}, {type(transcoder).__name__})")
    out_dir = Path(out_dir)
    saved = {}
    for name, model in (("sae", sae), ("skip_transcoder", transcoder)):
        model.save_model(out_dir / name)
        saved[name] = out_dir / name
    return saved


def load_pair(out_dir: str | Path, device: str = "cpu") -> tuple[SAE[Any], SkipTranscoder]:
    """Load what :func:`save_pair` wrote, both through ``SAE.load_from_disk`` (sae-lens' registry
    maps the saved ``architecture`` "skip_transcoder" to ``SkipTranscoder``)."""
    out_dir = Path(out_dir)
    models = {}
    for name in MODEL_NAMES:
        if not (out_dir / name / "cfg.json").exists():
            raise InputError(f"load_pair: {out_dir / name} has no cfg.json; expected a directory written by save_pair")
        models[name] = SAE.load_from_disk(out_dir / name, device=device).eval()
    if isinstance(models["sae"], Transcoder) or not isinstance(models["skip_transcoder"], SkipTranscoder):
        raise InputError(
            f"load_pair: {out_dir} holds ({models['sae'].cfg.architecture()}, {models['skip_transcoder'].cfg.architecture()}), "
            "expected (an SAE, skip_transcoder)"
        )
    return models["sae"], models["skip_transcoder"]
