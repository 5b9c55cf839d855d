"""Load sae-lens SAEs (checkpoints this project trained or external ones) with their guardrails.

This is the sae-lens reader (an ``sae_lens.SAE``, for code that needs sae-lens itself).
Stages that only read weights or encode arrays use :func:`sae_difficulty.saes.checkpoint.read_checkpoint`,
which reads the same files without importing sae-lens and applies the same guardrails.
"""

from __future__ import annotations

import os
from collections.abc import Collection
from typing import Any

from sae_lens import SAE

from sae_difficulty.saes.checkpoint import require_checkpoint_files
from sae_difficulty.saes.encoding import (
    DEFAULT_BATCH_SIZE,
    sae_architecture,
)
from sae_difficulty.saes.quality import require_explained_variance
from sae_difficulty.utils.errors import InputError


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
    path = require_checkpoint_files(path)
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
        require_explained_variance(sae, path, heldout, min_explained_variance, batch_size, floor_check_rows)
    return sae

