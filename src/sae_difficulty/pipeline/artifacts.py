"""Readers shared by the stages: backbones, tasks, evaluation tables and activation caches."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from sae_difficulty.utils.errors import InputError
from sae_difficulty.utils.io import read_json

BACKBONE_SOURCE = "source.json"
MODEL_DIR = "model"
EVALUATION = "evaluation.parquet"
EXAMPLES = "examples.parquet"
ACTIVATIONS = "activations.zarr"
CODES = "codes.zarr"
SAE_DIR = "sae"


def backbone_source(backbone_dir: Path) -> str:
    """Hub name (paper profile) or the local HF directory (demo) of a backbone node."""
    source = read_json(Path(backbone_dir) / BACKBONE_SOURCE)
    return source["hub"] if source.get("hub") else str(Path(backbone_dir) / MODEL_DIR)


def backbone_modality(backbone_dir: Path) -> str:
    return read_json(Path(backbone_dir) / BACKBONE_SOURCE)["modality"]



def read_table(path: Path, what: str) -> pd.DataFrame:
    if not Path(path).is_file():
        raise InputError(f"{path}: missing {what}; expected the upstream node to have written it")
    try:
        return pd.read_parquet(path)
    except Exception as error:  # pyarrow raises several types for corrupt files
        raise InputError(f"{path}: unreadable {what} ({type(error).__name__}); expected a parquet table") from None


def cheap_columns(frame: pd.DataFrame) -> list[str]:
    return sorted(c for c in frame.columns if c.startswith("cheap__"))


def open_zarr_group(path: Path, what: str):
    import zarr

    if not Path(path).exists():
        raise InputError(f"{path}: missing {what}; expected a zarr group written by the upstream node")
    try:
        return zarr.open_group(str(path), mode="r")
    except Exception as error:
        raise InputError(f"{path}: unreadable {what} ({type(error).__name__}); expected a zarr v3 group") from None


# Poolings of an example's positions the probe can read. ``last``, ``mean`` and ``max`` are
# stored arrays of the extract and codes nodes (SAE codes pooled over the token codes, not
# codes of pooled activations); ``concat`` is their side-by-side stack, in this order.
STORED_POOLINGS = ("last", "mean", "max")
CONCAT_ORDER = ("mean", "max", "last")
POOLINGS = (*STORED_POOLINGS, "concat")


def read_pooled(group: Any, pooling: str, path: Path) -> np.ndarray:
    """One example-level view ``[N, width]`` of an extract or codes group: a stored pooling,
    or ``concat`` = hstack of mean, max and last (width 3 x d)."""
    if pooling not in POOLINGS:
        raise InputError(f"pooling: expected one of {list(POOLINGS)}, got {pooling!r}")
    if pooling != "concat":
        return read_array(group, pooling, path)
    return np.hstack([read_array(group, name, path) for name in CONCAT_ORDER])


def pooled_feature_ids(positions: Any, width: int) -> np.ndarray:
    """The SAE feature of each column of a pooled code view of ``width`` features per part
    (``concat`` has three parts; column ``j`` is feature ``j % width``)."""
    return np.asarray(positions, dtype=np.int64) % int(width)


def read_array(group: Any, name: str, path: Path) -> np.ndarray:
    if name not in group:
        raise InputError(f"{path}: array {name!r} missing; have {sorted(group.array_keys())}")
    try:
        return np.asarray(group[name][...])
    except Exception as error:
        raise InputError(f"{path}/{name}: corrupt array ({type(error).__name__})") from None
