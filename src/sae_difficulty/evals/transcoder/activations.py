"""MLP input and output rows of the LM (the two models' sources and target)."""

from __future__ import annotations

import sys
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from sae_difficulty.modalities.llm.backbone import Backbone, check_layer
from sae_difficulty.utils.errors import InputError


def hook_names(layer: int) -> tuple[str, str]:
    """(MLP input hook, MLP output hook) of block ``layer``."""
    return f"blocks.{int(layer)}.ln2.hook_normalized", f"blocks.{int(layer)}.hook_mlp_out"



def check_windows(windows: Any, name: str, bos_id: int | None = None) -> torch.Tensor:
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
    windows = check_windows(windows, "windows", backbone.bos_id)
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


def check_rows(name: str, values: Any, rows: int | None = None, width: int | None = None) -> np.ndarray:
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
