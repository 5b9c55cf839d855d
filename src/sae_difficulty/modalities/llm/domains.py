"""Prose-only and code-only text of the demo LM's corpus, as token windows and activation caches.

The suite's domains are the corpus kinds (``llm_corpus``: pydoc prose and standard-library
code). Training rows come from the corpus role ``sae`` and held-out rows from ``heldout``,
so no domain SAE ever sees the backbone's training text or the task passages.

Cache layout (the ``sae`` stage trains on it unchanged): zarr v3 group with ``train`` and
``heldout`` float32 rows, plus ``heldout_tokens`` int32 ``[n_windows, context_length]``
(BOS first). Row ``i`` of ``heldout`` is window ``i // (context_length - 1)`` at position
``1 + i % (context_length - 1)``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
import zarr

from sae_difficulty.modalities.llm import corpus as llm_corpus
from sae_difficulty.modalities.llm.backbone import Backbone, check_layer
from sae_difficulty.modalities.llm.patching import (
    fill_rows,
    row_array,
    shuffled_windows,
)
from sae_difficulty.utils.errors import InputError

DOMAIN_KINDS = {"prose": "prose", "code": "code"}
HELDOUT_TOKENS = "heldout_tokens"


def domain_documents(domain: str, role: str) -> list[llm_corpus.Document]:
    """The corpus documents of one domain (``prose``/``code``) and role (``sae``/``heldout``/``tasks``)."""
    if domain not in DOMAIN_KINDS:
        raise InputError(f"domain {domain!r} is unknown; expected one of {sorted(DOMAIN_KINDS)}")
    return llm_corpus.documents_for(role, (DOMAIN_KINDS[domain],))


def domain_windows(backbone: Backbone, domain: str, role: str, context_length: int, seed: int) -> torch.Tensor:
    """Non-overlapping BOS-led windows ``[n, context_length]`` of one domain, in a seeded order."""
    documents = domain_documents(domain, role)
    return shuffled_windows(backbone, documents, context_length, seed, f"domain {domain!r} role {role!r}")


def windows_for_rows(n_rows: int, context_length: int) -> int:
    """How many windows hold ``n_rows`` non-BOS rows."""
    return -(-n_rows // (context_length - 1))


def write_domain_cache(backbone: Backbone, domain: str, layer: int, out_zarr: str | Path, params: dict[str, Any], seed: int) -> dict[str, Any]:
    """Write one domain's SAE training cache (see the module docstring); return its summary.

    ``params`` (``sae_evals.domains``): ``tokens``, ``heldout_tokens``, ``context_length``, ``batch_size``.
    """
    hook_name = check_layer(backbone, layer)
    context_length, batch_size = int(params["context_length"]), int(params["batch_size"])
    group = zarr.open_group(str(out_zarr), mode="w", zarr_format=3)
    group.attrs.update({"hook_name": hook_name, "layer": int(layer), "backbone": backbone.source,
                        "context_length": context_length, "domain": domain})  # fmt: skip
    summary: dict[str, Any] = {"domain": domain, "layer": int(layer), "hook_name": hook_name, "d_model": backbone.d_model}
    for name, role, budget in (("train", "sae", int(params["tokens"])), ("heldout", "heldout", int(params["heldout_tokens"]))):
        windows = domain_windows(backbone, domain, role, context_length, seed)
        summary[f"{name}_windows_available"] = int(len(windows))
        fill_rows(backbone, hook_name, layer, windows, row_array(group, name, budget, backbone.d_model), batch_size, f"{domain} {name} L{layer}")
        summary[f"{name}_tokens"] = budget
        if name == "heldout":
            used = windows[: windows_for_rows(budget, context_length)].numpy().astype(np.int32)
            group.create_array(HELDOUT_TOKENS, data=used, chunks=used.shape)
    return summary


def read_domain_cache(path: str | Path) -> tuple[Any, Any, np.ndarray]:
    """(train rows, heldout rows, heldout token windows) of a domain cache, with one-line errors."""
    from sae_difficulty.pipeline.artifacts import open_zarr_group, read_array

    group = open_zarr_group(Path(path), "domain activation cache")
    for name in ("train", "heldout"):
        if name not in group:
            raise InputError(f"{path}: array {name!r} missing; expected a domain cache written by domain_activations")
    return group["train"], group["heldout"], read_array(group, HELDOUT_TOKENS, Path(path))
