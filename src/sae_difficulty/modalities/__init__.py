"""Modality adapters. ``get_modality(name)`` imports an adapter lazily, so the shared
core and the store never import torch."""

from __future__ import annotations

import importlib

from sae_difficulty.errors import InputError

ADAPTERS = {
    "llm": ("sae_difficulty.modalities.llm", "LanguageModality"),
    "tsfm": ("sae_difficulty.modalities.tsfm", "TimeSeriesModality"),
}


def get_modality(name: str):
    """Return an instance of the adapter registered under ``name`` ("llm" or "tsfm")."""
    if name not in ADAPTERS:
        raise InputError(f"unknown modality {name!r}; expected one of {sorted(ADAPTERS)}")
    module_name, class_name = ADAPTERS[name]
    module = importlib.import_module(module_name)
    return getattr(module, class_name)()
