"""The SAE stage: train (sae-lens) from zarr caches, load with guardrails, encode, evaluate.

Public API (the rule scripts call these names):

* training (``sae_training``): :class:`SAETrainingSpec`, :func:`train_sae`, :func:`fit_sae`,
  :func:`save_sae`;
* caches (``sae_cache``): :func:`write_training_cache`, :func:`open_training_cache`,
  :func:`open_activation_cache`, :func:`write_activation_cache`, :func:`stream_batches`,
  :func:`write_codes`;
* here: :func:`load_sae` (guardrails), :func:`sae_architecture`, :func:`reconstruct`,
  :func:`encode_rows`, :func:`encode_pooled`, :func:`evaluate_quality`,
  :func:`plot_feature_frequency`, :func:`write_quality_report`,
  :func:`decoder_directions`, :func:`stability_from_checkpoints`.

The model-free numbers (explained variance, PWMCC, ...) live in
``sae_difficulty.core.sae_metrics``; this module only runs the SAE and feeds them.
"""

from __future__ import annotations

import os
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
import zarr
from matplotlib.figure import Figure
from sae_lens import SAE
from sae_lens.constants import SAE_CFG_FILENAME, SAE_WEIGHTS_FILENAME
from tqdm.auto import tqdm

from sae_difficulty.core import sae_metrics
from sae_difficulty.errors import InputError
from sae_difficulty.io import write_experiment, write_parquet
from sae_difficulty.sae_cache import (
    ActivationCache,
    TrainingCache,
    ZarrBatchStream,
    iter_row_blocks,
    open_activation_cache,
    open_training_cache,
    stream_batches,
    write_activation_cache,
    write_codes,
    write_training_cache,
)
from sae_difficulty.sae_training import (
    ARCHITECTURES,
    TRAINING_SUMMARY_FILENAME,
    SAETrainingSpec,
    TrainingResult,
    fit_sae,
    make_training_sae,
    save_sae,
    train_sae,
)

__all__ = [
    "ARCHITECTURES",
    "TRAINING_SUMMARY_FILENAME",
    "ActivationCache",
    "SAEQuality",
    "SAETrainingSpec",
    "TrainingCache",
    "TrainingResult",
    "ZarrBatchStream",
    "decoder_directions",
    "encode_pooled",
    "encode_rows",
    "evaluate_quality",
    "fit_sae",
    "iter_row_blocks",
    "load_sae",
    "make_training_sae",
    "open_activation_cache",
    "open_training_cache",
    "plot_feature_frequency",
    "read_codes",
    "reconstruct",
    "sae_architecture",
    "save_sae",
    "stability_from_checkpoints",
    "stream_batches",
    "train_sae",
    "write_activation_cache",
    "write_codes",
    "write_quality_report",
    "write_training_cache",
]

DEFAULT_BATCH_SIZE = 4096

# sae-lens architecture names -> project names (ReLU+L1 is sae-lens' "standard")
_PROJECT_ARCHITECTURE = {"standard": "relu", "topk": "topk", "batchtopk": "batchtopk", "jumprelu": "jumprelu"}


# --------------------------------------------------------------------------- loading


def sae_architecture(sae: SAE[Any]) -> str:
    """The project architecture name of an SAE: the architecture it was *trained* as.

    BatchTopK SAEs are saved by sae-lens as JumpReLU; the training architecture recorded
    in ``cfg.metadata.training_architecture`` tells them apart.
    """
    trained_as = sae.cfg.metadata.training_architecture
    name = trained_as if trained_as else sae.cfg.architecture()
    return _PROJECT_ARCHITECTURE.get(name, name)


def load_sae(
    path: str | os.PathLike,
    *,
    expected_d_in: int | None = None,
    allowed_architectures: Collection[str] | None = None,
    heldout: Any | None = None,
    min_explained_variance: float | None = None,
    device: str = "cpu",
    batch_size: int = DEFAULT_BATCH_SIZE,
    floor_check_rows: int = 65_536,
) -> SAE[Any]:
    """Load an SAE saved in sae-lens format, in eval mode, refusing unusable ones with one line.

    Refuses: a missing checkpoint directory or file (``cfg.json``,
    ``sae_weights.safetensors``), one sae-lens cannot read, a ``d_in`` other than
    ``expected_d_in``, an architecture outside ``allowed_architectures`` (project names:
    topk/relu/batchtopk), and, when ``min_explained_variance`` is given, an SAE whose
    explained variance on the first ``floor_check_rows`` rows of ``heldout`` activations
    is below it (untrained or random-init).
    """
    path = Path(path)
    if not path.is_dir():
        raise InputError(f"SAE checkpoint {path} does not exist (expected a directory saved by sae-lens)")
    for filename in (SAE_CFG_FILENAME, SAE_WEIGHTS_FILENAME):
        if not (path / filename).is_file():
            raise InputError(
                f"SAE checkpoint {path}: missing {filename} (sae-lens format: {SAE_CFG_FILENAME} + {SAE_WEIGHTS_FILENAME})"
            )
    try:
        sae = SAE.load_from_disk(str(path), device=device)
    except Exception as error:  # sae-lens raises many types for a corrupt checkpoint
        detail = str(error).strip().splitlines()[0] if str(error).strip() else ""
        raise InputError(
            f"SAE checkpoint {path}: sae-lens cannot load it ({type(error).__name__}: {detail[:200]})"
        ) from error
    sae.eval()
    if expected_d_in is not None and sae.cfg.d_in != expected_d_in:
        raise InputError(f"SAE {path}: d_in={sae.cfg.d_in} does not match the activation cache width d={expected_d_in}")
    architecture = sae_architecture(sae)
    if allowed_architectures is not None and architecture not in set(allowed_architectures):
        raise InputError(
            f"SAE {path}: architecture '{architecture}' is not one this stage was asked for {sorted(allowed_architectures)}"
        )
    if min_explained_variance is not None:
        if heldout is None:
            raise InputError(f"load_sae({path}): min_explained_variance needs held-out activations (heldout=None)")
        quality = evaluate_quality(sae, heldout, batch_size=batch_size, max_rows=floor_check_rows)
        ev = quality.metrics["explained_variance"]
        if not ev >= min_explained_variance:
            raise InputError(
                f"SAE {path}: explained variance {ev:.4f} on held-out activations is below the floor "
                f"{min_explained_variance} (untrained or random-init SAE?)"
            )
    return sae


def decoder_directions(sae: SAE[Any]) -> np.ndarray:
    """The decoder dictionary as float64 rows ``[d_sae, d_in]`` (what PWMCC compares)."""
    return sae.W_dec.detach().to("cpu", torch.float64).numpy().copy()


# --------------------------------------------------------------------------- encoding


def reconstruct(sae: SAE[Any], x: torch.Tensor, ablate_features: Iterable[int] | None = None) -> torch.Tensor:
    """``decode(encode(x))`` on ``[..., d_in]``, with the listed features' codes zeroed before decoding.

    Uses the SAE's own ``encode``/``decode`` (decoder-bias shift and any activation
    normalization included), so with ``ablate_features=None`` it equals ``sae(x)`` unless
    the SAE was set to add its error term.
    """
    codes = sae.encode(x)
    if ablate_features is not None:
        indices = sorted({int(i) for i in ablate_features})
        if indices and not (0 <= indices[0] and indices[-1] < sae.cfg.d_sae):
            raise InputError(
                f"ablate_features: indices must lie in [0, {sae.cfg.d_sae}), got {indices[0]}..{indices[-1]}"
            )
        if indices:
            codes = codes.clone()
            codes[..., indices] = 0
    return sae.decode(codes)


@torch.no_grad()
def encode_rows(sae: SAE[Any], rows: Any, batch_size: int = DEFAULT_BATCH_SIZE, progress: bool = False) -> np.ndarray:
    """Codes ``[rows, d_sae]`` (float32) of a numpy/zarr array, encoded ``batch_size`` rows at a time."""
    _check_width(sae, rows, "rows")
    out = np.empty((int(rows.shape[0]), sae.cfg.d_sae), dtype=np.float32)
    start = 0
    for block in tqdm(
        iter_row_blocks(rows, batch_size),
        total=-(-int(rows.shape[0]) // batch_size),
        desc="encode",
        disable=not progress,
    ):
        codes = sae.encode(torch.from_numpy(block).to(sae.device)).float().cpu().numpy()
        out[start : start + block.shape[0]] = codes
        start += block.shape[0]
    return out


def _check_width(sae: SAE[Any], rows: Any, name: str) -> None:
    shape = tuple(rows.shape)
    if len(shape) != 2 or shape[1] != sae.cfg.d_in:
        raise InputError(f"{name}: expected [rows, {sae.cfg.d_in}] activations for this SAE, got shape {shape}")


@torch.no_grad()
def encode_pooled(
    sae: SAE[Any],
    activation_zarr_group: str | os.PathLike | zarr.Group | ActivationCache,
    batch_size: int = DEFAULT_BATCH_SIZE,
    progress: bool = False,
) -> dict[str, np.ndarray]:
    """Pooled SAE codes per example, pooled the way the raw block is.

    ``last``: codes of each example's boundary activation. ``mean``: the mean over the
    example's tokens *of the codes* (not the codes of the mean activation), streamed
    over ``tokens`` ``batch_size`` rows at a time; batches may cut through examples.
    """
    cache = (
        activation_zarr_group
        if isinstance(activation_zarr_group, ActivationCache)
        else open_activation_cache(activation_zarr_group)
    )
    _check_width(sae, cache.tokens, f"{cache.path}: 'tokens'")
    offsets = cache.offsets
    n_examples, n_tokens = cache.n_examples, int(offsets[-1])
    sums = np.zeros((n_examples, sae.cfg.d_sae), dtype=np.float64)
    start = 0
    for block in tqdm(
        iter_row_blocks(cache.tokens, batch_size),
        total=-(-n_tokens // batch_size),
        desc="encode tokens",
        disable=not progress,
    ):
        stop = start + block.shape[0]
        codes = sae.encode(torch.from_numpy(block).to(sae.device)).double().cpu().numpy()
        first = int(np.searchsorted(offsets, start, side="right") - 1)
        last = int(np.searchsorted(offsets, stop - 1, side="right") - 1)
        # where each example of this block starts inside it (offsets are strictly increasing)
        starts_in_block = np.maximum(offsets[first : last + 1] - start, 0)
        sums[first : last + 1] += np.add.reduceat(codes, starts_in_block, axis=0)
        start = stop
    means = (sums / np.diff(offsets)[:, None]).astype(np.float32)
    return {"last": encode_rows(sae, cache.last, batch_size, progress), "mean": means}


# --------------------------------------------------------------------------- quality


@dataclass(frozen=True)
class SAEQuality:
    """Quality of an SAE on held-out activations: JSON-ready scalars + per-feature frequencies."""

    metrics: dict[str, Any]
    feature_frequency: np.ndarray


@torch.no_grad()
def evaluate_quality(
    sae: SAE[Any],
    heldout: Any,
    batch_size: int = DEFAULT_BATCH_SIZE,
    dense_threshold: float = sae_metrics.DENSE_THRESHOLD,
    progress: bool = False,
    max_rows: int | None = None,
) -> SAEQuality:
    """Explained variance, FVU, MSE, mean L0, dead and dense fractions on held-out activations.

    ``heldout``: numpy array, zarr array or tensor ``[H, d_in]``, streamed ``batch_size``
    rows at a time through ``reconstruct`` (the same path the causal patching uses).
    ``max_rows`` caps how many leading rows are used (None: all).
    Conventions are those of :mod:`sae_difficulty.core.sae_metrics`: a feature is dead if
    it fired on none of the ``n_tokens`` held-out tokens, dense if it fired on more than
    ``dense_threshold`` of them (SAEBench's feature density; 10 % by default).
    """
    if isinstance(heldout, torch.Tensor):
        heldout = heldout.detach().cpu().numpy()
    _check_width(sae, heldout, "heldout")
    if max_rows is not None and max_rows < 1:
        raise InputError(f"max_rows: expected None or >= 1, got {max_rows}")
    n_rows = int(heldout.shape[0]) if max_rows is None else min(max_rows, int(heldout.shape[0]))
    reconstruction = sae_metrics.ReconstructionAccumulator()
    firing = sae_metrics.FiringAccumulator(sae.cfg.d_sae)
    blocks = iter_row_blocks(heldout, batch_size, stop=n_rows)
    for block in tqdm(blocks, total=-(-n_rows // batch_size), desc="evaluate SAE", disable=not progress):
        x = torch.from_numpy(block).to(sae.device)
        codes = sae.encode(x)
        x_hat = sae.decode(codes)
        reconstruction.update(block, x_hat.float().cpu().numpy())
        firing.update(codes.float().cpu().numpy())
    freqs = firing.frequencies()
    metrics = {
        "architecture": sae_architecture(sae),
        "d_in": int(sae.cfg.d_in),
        "d_sae": int(sae.cfg.d_sae),
        **reconstruction.result(),
        "mean_l0": firing.mean_l0(),
        "dead_fraction": sae_metrics.dead_fraction(freqs),
        "n_dead": int(np.sum(freqs == 0)),
        "dense_fraction": sae_metrics.dense_fraction(freqs, dense_threshold),
        "dense_threshold": dense_threshold,
    }
    return SAEQuality(metrics=metrics, feature_frequency=freqs)


def plot_feature_frequency(
    freqs: np.ndarray, path: str | os.PathLike, title: str, dense_threshold: float = sae_metrics.DENSE_THRESHOLD
) -> Path:
    """Histogram of log10 feature firing frequency (dead features counted in the legend), PNG.

    Deterministic bytes: Agg rendering, fixed size and dpi, no software/date metadata.
    """
    freqs = np.asarray(freqs, dtype=np.float64)
    if freqs.ndim != 1 or freqs.size == 0:
        raise InputError(f"freqs: expected a non-empty 1-D array, got shape {freqs.shape}")
    alive = freqs[freqs > 0]
    n_dead = int(freqs.size - alive.size)
    figure = Figure(figsize=(6, 4), dpi=100)  # no pyplot: no global backend or figure registry
    axis = figure.subplots()
    if alive.size:
        log_freq = np.log10(alive)
        low = min(np.floor(log_freq.min()), np.log10(dense_threshold) - 1)
        axis.hist(log_freq, bins=np.linspace(low, 0.0, 41), color="tab:blue", label=f"alive ({alive.size})")
    axis.axvline(np.log10(dense_threshold), color="tab:red", linestyle="--", label=f"dense > {dense_threshold:g}")
    axis.plot([], [], " ", label=f"dead (never fired): {n_dead} of {freqs.size}")
    axis.set_xlabel("log10 feature firing frequency (held-out tokens)")
    axis.set_ylabel("features")
    axis.set_title(title)
    axis.legend(loc="upper left", fontsize=8)
    figure.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, format="png", metadata={"Software": None})
    return path


def write_quality_report(
    out_dir: str | os.PathLike,
    name: str,
    quality: SAEQuality,
    extra: Mapping[str, Any] | None = None,
    title: str | None = None,
) -> dict[str, Path]:
    """Write ``<name>.json`` (metrics + ``extra``, e.g. spliced loss and stability),
    ``<name>.parquet`` (one row: every scalar, nested keys joined by ``.``),
    ``<name>_feature_frequency.parquet`` and ``<name>_feature_frequency.png``."""
    out_dir = Path(out_dir)
    detail = {**quality.metrics, **dict(extra or {})}
    row = pd.json_normalize(_scalars_only(detail), sep=".")
    write_experiment(out_dir, name, detail, row)
    table = pd.DataFrame({"feature": np.arange(quality.feature_frequency.size), "frequency": quality.feature_frequency})
    parquet = write_parquet(out_dir / f"{name}_feature_frequency.parquet", table)
    png = plot_feature_frequency(
        quality.feature_frequency,
        out_dir / f"{name}_feature_frequency.png",
        title or name,
        dense_threshold=quality.metrics.get("dense_threshold", sae_metrics.DENSE_THRESHOLD),
    )
    return {
        "json": out_dir / f"{name}.json",
        "parquet": out_dir / f"{name}.parquet",
        "frequency_parquet": parquet,
        "png": png,
    }


def _scalars_only(values: Mapping[str, Any]) -> dict[str, Any]:
    """Nested mappings kept, lists dropped: the flat table holds one value per column."""
    kept: dict[str, Any] = {}
    for key, value in values.items():
        if isinstance(value, Mapping):
            kept[key] = _scalars_only(value)
        elif not isinstance(value, (list, tuple, np.ndarray)):
            kept[key] = value
    return kept


def stability_from_checkpoints(
    paths: Mapping[str, str | os.PathLike], n_random: int = 5, seed: int = 0, **load_kwargs: Any
) -> dict[str, Any]:
    """PWMCC stability report (core ``stability_report``) of SAEs saved under ``paths`` (name -> dir)."""
    dictionaries = {name: decoder_directions(load_sae(path, **load_kwargs)) for name, path in paths.items()}
    return sae_metrics.stability_report(dictionaries, n_random=n_random, seed=seed)


def read_codes(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """Read a codes group written by :func:`write_codes` into memory (``{name: float32 array}``)."""
    if not Path(path).exists():
        raise InputError(f"SAE codes {path} do not exist")
    group = zarr.open_group(str(path), mode="r")
    return {name: np.asarray(array[...]) for name, array in sorted(group.arrays())}
