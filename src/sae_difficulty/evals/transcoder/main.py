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

import sys
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import torch
from sae_lens import SAE
from sae_lens.saes.transcoder import Transcoder
from tqdm.auto import tqdm

from sae_difficulty.core.sae_metrics import (
    FiringAccumulator,
    ReconstructionAccumulator,
    dead_fraction,
    loss_recovered,
)
from sae_difficulty.evals.base import EvalResult
from sae_difficulty.evals.transcoder.activations import (
    check_rows,
    check_windows,
    hook_names,
)
from sae_difficulty.evals.transcoder.bootstrap import (
    percentile_or_none,
    row_bootstrap,
    sequence_bootstrap,
)
from sae_difficulty.evals.transcoder.config import TranscoderComparisonConfig
from sae_difficulty.evals.transcoder.output import (
    DIFFERENCE_METRICS,
    MODEL_NAMES,
    TranscoderComparisonOutput,
)
from sae_difficulty.evals.transcoder.training import forward
from sae_difficulty.modalities.llm.backbone import Backbone, check_layer
from sae_difficulty.modalities.llm.scoring import token_nll
from sae_difficulty.utils.errors import InputError
from sae_difficulty.utils.io import to_jsonable

HEADLINE_CLAIM = (
    "skip-transcoders reconstruct as well as SAEs at similar sparsity while being more interpretable "
    "(Paulo, Shabalin & Belrose 2025, 'Transcoders beat sparse autoencoders for interpretability')"
)
# Rows encoded at once in evaluation, and sequences per LM forward pass when splicing.
_EVAL_ROWS = 4096
_SPLICE_BATCH = 16


# --------------------------------------------------------------------------- evaluation


@dataclass(frozen=True)
class TranscoderComparisonResult(EvalResult):
    """Per-model metrics and transcoder - SAE differences (see :class:`TranscoderComparisonOutput`).

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

    OUTPUT = TranscoderComparisonOutput

    def document(self) -> dict[str, Any]:
        """The JSON content (see :class:`TranscoderComparisonOutput`)."""
        out = asdict(self)
        out["eval"] = "transcoder_comparison"
        out["delta_loss_zero_ablation"] = self.loss_zero_ablation - self.loss_clean
        return out

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
        recon, codes = forward(model, torch.from_numpy(sources[start:stop]))
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
        return forward(sae, mlp_out[:, 1:].to(sae.dtype))[0]

    def transcoder_reconstruction(mlp_out: torch.Tensor) -> torch.Tensor:
        return forward(transcoder, captured["mlp_in"][:, 1:].to(transcoder.dtype))[0]

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
    targets = check_rows("mlp_out_heldout", mlp_out_heldout, width=backbone.d_model)
    sources = check_rows("mlp_in_heldout", mlp_in_heldout, rows=targets.shape[0], width=backbone.d_model)
    _check_models(sae, transcoder, sources.shape[1], targets.shape[1])
    windows = check_windows(splice_windows, "splice_windows", backbone.bos_id)
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
    row_boot = row_bootstrap(targets, per_model, config.n_boot, config.seed)
    per_sequence = _spliced_losses(backbone, config.layer, sae, transcoder, windows)
    sequence_boot = sequence_bootstrap(per_sequence, config.n_boot, config.seed)

    loss_clean = float(per_sequence["clean"].mean())
    loss_zero = float(per_sequence["zero_ablation"].mean())
    models: dict[str, dict[str, Any]] = {}
    for name, model in (("sae", sae), ("skip_transcoder", transcoder)):
        stats = per_model[name]
        recovered = loss_recovered(loss_clean, float(per_sequence[name].mean()), loss_zero)
        ev_low, ev_high = percentile_or_none(row_boot[f"ev_{name}"])
        l0_low, l0_high = percentile_or_none(row_boot[f"l0_{name}"])
        loss_low, loss_high = percentile_or_none(sequence_boot[name])
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
        low, high = percentile_or_none(replicates)
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
