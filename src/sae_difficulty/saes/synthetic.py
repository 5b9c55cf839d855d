"""Synthetic activations with a known feature dictionary, built with sae-lens' ``sae_lens.synthetic``.

A :class:`~sae_lens.synthetic.SyntheticModel` holds ``num_features`` unit feature
vectors in a ``hidden_dim`` space (the true dictionary), Zipfian firing probabilities,
optional hierarchy (children fire only with their parent, siblings mutually exclusive)
and optional low-rank correlation between firings, and per-feature firing magnitudes.
This module turns the project's node params (``synthetic.model`` in the config, already
resolved by ``pipeline.study_synthetic``) into sae-lens' config, saves the model with
sae-lens' own ``save`` (so ``SyntheticModel.load_from_disk`` reloads it, true dictionary
included) and samples activations into the SAE training cache the ``sae`` stage reads.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
from sae_lens.synthetic import (
    FoldedNormalMagnitudeConfig,
    HierarchyConfig,
    LinearMagnitudeConfig,
    LowRankCorrelationConfig,
    OrthogonalizationConfig,
    SyntheticModel,
    SyntheticModelConfig,
    ZipfianFiringProbabilityConfig,
)

from sae_difficulty.saes.cache import DEFAULT_CHUNK_ROWS, ChunkAlignedWriter
from sae_difficulty.utils.errors import InputError

MODEL_DIR = "synthetic_model"
#: Rows sampled per call: bounded memory (rows x num_features feature activations) at any size.
SAMPLE_BLOCK_ROWS = 16384
#: Independent random streams of one seed: training rows, held-out rows, the evaluation's fresh samples.
STREAMS = {"train": 1, "heldout": 2, "evaluation": 3}


def stream_seed(seed: int, stream: str) -> int:
    """The torch seed of one use of the data (distinct per stream, so no evaluation sample is a training row)."""
    return 10 * int(seed) + STREAMS[stream]


def model_config(params: Mapping[str, Any]) -> SyntheticModelConfig:
    """sae-lens' config from a ``synthetic_model`` node's params (a disabled part is ``None``)."""
    try:
        firing = params["firing"]
        hierarchy = params.get("hierarchy")
        correlation = params.get("correlation")
        orthogonalization = params.get("orthogonalization")
        magnitudes = params["magnitudes"]
        return SyntheticModelConfig(
            num_features=int(params["num_features"]),
            hidden_dim=int(params["hidden_dim"]),
            firing_probability=ZipfianFiringProbabilityConfig(
                exponent=float(firing["exponent"]), max_prob=float(firing["max_prob"]), min_prob=float(firing["min_prob"])
            ),
            hierarchy=None if hierarchy is None else HierarchyConfig(
                total_root_nodes=int(hierarchy["total_root_nodes"]), branching_factor=int(hierarchy["branching_factor"]),
                max_depth=int(hierarchy["max_depth"]),
                mutually_exclusive_portion=float(hierarchy["mutually_exclusive_portion"]),
                compensate_probabilities=bool(hierarchy["compensate_probabilities"]),
            ),
            correlation=None if correlation is None else LowRankCorrelationConfig(
                rank=int(correlation["rank"]), correlation_scale=float(correlation["scale"])
            ),
            orthogonalization=None if orthogonalization is None else OrthogonalizationConfig(
                num_steps=int(orthogonalization["num_steps"]), lr=float(orthogonalization["lr"])
            ),
            mean_firing_magnitudes=LinearMagnitudeConfig(start=float(magnitudes["mean_start"]), end=float(magnitudes["mean_end"])),
            std_firing_magnitudes=FoldedNormalMagnitudeConfig(mean=float(magnitudes["std_mean"]), std=float(magnitudes["std_std"])),
            bias=float(params["bias"]),
            seed=int(params["seed"]),
        )  # fmt: skip
    except KeyError as missing:
        raise InputError(f"synthetic.model: missing key {missing}") from None
    except ValueError as error:  # sae-lens' own checks (e.g. min_prob < max_prob, a hierarchy larger than the features)
        raise InputError(f"synthetic.model: {error}") from None


def build_model(params: Mapping[str, Any]) -> SyntheticModel:
    """A seeded SyntheticModel for ``params`` on CPU (every random part derives from ``params['seed']``)."""
    config = model_config(params)
    torch.manual_seed(config.seed)
    try:
        return SyntheticModel(config, device="cpu")
    except ValueError as error:
        raise InputError(f"synthetic.model: {error}") from None


def save_model(model: SyntheticModel, node_dir: str | os.PathLike) -> Path:
    """sae-lens' ``save`` under ``node_dir/synthetic_model`` (config, feature vectors, bias, firing probabilities, hierarchy)."""
    target = Path(node_dir) / MODEL_DIR
    model.save(target)
    return target


def load_model(node_dir: str | os.PathLike) -> SyntheticModel:
    """The SyntheticModel a ``synthetic_model`` node saved."""
    source = Path(node_dir) / MODEL_DIR
    if not source.is_dir():
        raise InputError(f"{source}: missing; expected a synthetic model saved by the synthetic_model stage")
    return SyntheticModel.load_from_disk(source, device="cpu")


def true_dictionary(model: SyntheticModel) -> np.ndarray:
    """The true feature vectors ``[num_features, hidden_dim]`` (float64, unit rows)."""
    return model.feature_dict.feature_vectors.detach().double().numpy()


def firing_probabilities(model: SyntheticModel) -> np.ndarray:
    """Each true feature's marginal firing probability before the hierarchy gates it."""
    return model.activation_generator.firing_probabilities.detach().double().numpy()


def fill_rows(model: SyntheticModel, array: Any, seed: int, block_rows: int = SAMPLE_BLOCK_ROWS) -> dict[str, float]:
    """Sample ``array.shape[0]`` activation rows into ``array`` block by block (seeded), in whole chunks.

    Returns the mean number of active true features per row (the true L0) and the mean
    row norm of what was written.
    """
    torch.manual_seed(seed)
    n_rows = int(array.shape[0])
    active, norms = 0.0, 0.0
    with ChunkAlignedWriter(array) as writer:
        for start in range(0, n_rows, block_rows):
            hidden, features = model.sample_with_features(min(block_rows, n_rows - start))
            active += float((features != 0).sum())
            norms += float(hidden.double().norm(dim=1).sum())
            writer.append(hidden.float().numpy())
    return {"true_l0": active / n_rows, "mean_norm": norms / n_rows}


def write_synthetic_cache(model: SyntheticModel, path: str | os.PathLike, train_rows: int, heldout_rows: int,
                          seed: int, chunk_rows: int = DEFAULT_CHUNK_ROWS) -> dict[str, Any]:  # fmt: skip
    """An SAE training cache (float32 ``train`` and ``heldout`` row arrays, as ``saes.cache`` writes them)
    of fresh samples from ``model``: the two arrays are independent draws (:func:`stream_seed`)."""
    import zarr

    if train_rows < 1 or heldout_rows < 1:
        raise InputError(f"synthetic.activations: expected train_rows and heldout_rows >= 1, got {train_rows}, {heldout_rows}")
    group = zarr.open_group(str(path), mode="w", zarr_format=3)
    summary: dict[str, Any] = {}
    for name, rows in (("train", train_rows), ("heldout", heldout_rows)):
        array = group.create_array(name, shape=(rows, model.cfg.hidden_dim), chunks=(min(chunk_rows, rows), model.cfg.hidden_dim),
                                   dtype="float32", compressors=None)  # fmt: skip
        summary[name] = {"rows": rows, **fill_rows(model, array, stream_seed(seed, name))}
    return summary
