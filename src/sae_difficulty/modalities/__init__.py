"""Modality adapters. ``get_modality(name)`` imports an adapter lazily, so the shared
core and the store never import torch."""

from __future__ import annotations

import importlib
from pathlib import Path

from sae_difficulty.pipeline.artifacts import backbone_modality, backbone_source
from sae_difficulty.utils.errors import InputError

ADAPTERS = {
    "llm": ("sae_difficulty.modalities.llm.adapter", "LanguageModality"),
    "tsfm": ("sae_difficulty.modalities.tsfm.adapter", "TimeSeriesModality"),
}


def get_modality(name: str):
    """Return an instance of the adapter registered under ``name`` ("llm" or "tsfm")."""
    if name not in ADAPTERS:
        raise InputError(f"unknown modality {name!r}; expected one of {sorted(ADAPTERS)}")
    module_name, class_name = ADAPTERS[name]
    module = importlib.import_module(module_name)
    return getattr(module, class_name)()

def load_backbone(backbone_dir: Path):
    """The adapter of a backbone node's modality and the backbone it loads (hub name or local directory)."""
    modality = get_modality(backbone_modality(backbone_dir))
    return modality, modality.load_backbone(backbone_source(backbone_dir))
