"""Stage `codes`: SAE codes of the task examples, pooled like the raw activations.

The SAE is read with the sae-lens-free reader (``saes.checkpoint``: same files, same
codes as sae-lens); importing sae-lens would cost each job more CPU than its work.
"""

from __future__ import annotations

import shutil

import numpy as np

from sae_difficulty.pipeline.artifacts import (
    ACTIVATIONS,
    CODES,
    EXAMPLES,
    SAE_DIR,
    open_zarr_group,
)
from sae_difficulty.pipeline.runner import NodeContext
from sae_difficulty.saes.cache import write_codes
from sae_difficulty.saes.checkpoint import read_checkpoint
from sae_difficulty.saes.encoding import encode_pooled
from sae_difficulty.saes.quality import require_explained_variance
from sae_difficulty.utils.io import write_json

FLOOR_SAMPLE_TOKENS = 8192


def build(ctx: NodeContext) -> None:
    extract_dir = ctx.parent("extract")
    cache_path = extract_dir / ACTIVATIONS
    group = open_zarr_group(cache_path, "activation cache")
    tokens = group["tokens"]
    # The rows the SAE was fitted to: every position, or (``sae_positions: last``, the LM's
    # boundary-token SAE) the boundary rows only.
    rows = group["last"] if ctx.params.get("sae_positions") == "last" else tokens
    step = max(1, rows.shape[0] // FLOOR_SAMPLE_TOKENS)
    sample = np.asarray(rows[::step][:FLOOR_SAMPLE_TOKENS])
    # Refuses an SAE whose d_in does not match the cache or that explains too little
    # of these activations (untrained / random-init).
    sae_dir = ctx.parent("sae") / SAE_DIR
    sae = read_checkpoint(sae_dir, expected_d_in=tokens.shape[1])
    require_explained_variance(sae, sae_dir, sample, ctx.params["min_explained_variance"])
    codes = encode_pooled(sae, group)
    write_codes(ctx.out / CODES, codes)
    shutil.copyfile(extract_dir / EXAMPLES, ctx.out / EXAMPLES)
    write_json(ctx.out / "codes.json", {k: list(v.shape) for k, v in codes.items()})
