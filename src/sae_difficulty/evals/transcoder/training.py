"""Training an SAE and a skip-transcoder with one loop and one recipe (sae-lens classes); saving and loading the pair."""

from __future__ import annotations

import math
import sys
from pathlib import Path
from typing import Any

import numpy as np
import torch
from sae_lens import SAE, StandardSAE, StandardSAEConfig
from sae_lens.saes.sae import SAEMetadata
from sae_lens.saes.transcoder import SkipTranscoder, SkipTranscoderConfig, Transcoder
from tqdm.auto import tqdm

from sae_difficulty.evals.transcoder.activations import check_rows, hook_names
from sae_difficulty.evals.transcoder.config import TranscoderComparisonConfig
from sae_difficulty.evals.transcoder.output import MODEL_NAMES
from sae_difficulty.utils.errors import InputError

# Points kept on each training curve.
_CURVE_POINTS = 50


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


def forward(model: SAE[Any], source: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
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
        recon, codes = forward(model, sources[index])
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
    mlp_out = check_rows("mlp_out_train", mlp_out_train)
    mlp_in = check_rows("mlp_in_train", mlp_in_train, rows=mlp_out.shape[0])
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
