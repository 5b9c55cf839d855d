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


def read_array(group: Any, name: str, path: Path) -> np.ndarray:
    if name not in group:
        raise InputError(f"{path}: array {name!r} missing; have {sorted(group.array_keys())}")
    try:
        return np.asarray(group[name][...])
    except Exception as error:
        raise InputError(f"{path}/{name}: corrupt array ({type(error).__name__})") from None
