"""Stage `codes`: SAE codes of the task examples, pooled like the raw activations."""

from __future__ import annotations

import shutil

import numpy as np

from sae_difficulty import sae as sae_lib
from sae_difficulty.io import write_json
from sae_difficulty.scripting import NodeContext
from sae_difficulty.stages.common import ACTIVATIONS, CODES, EXAMPLES, SAE_DIR, open_zarr_group

FLOOR_SAMPLE_TOKENS = 8192


def build(ctx: NodeContext) -> None:
    extract_dir = ctx.parent("extract")
    cache_path = extract_dir / ACTIVATIONS
    group = open_zarr_group(cache_path, "activation cache")
    tokens = group["tokens"]
    step = max(1, tokens.shape[0] // FLOOR_SAMPLE_TOKENS)
    sample = np.asarray(tokens[::step][:FLOOR_SAMPLE_TOKENS])
    # Refuses an SAE whose d_in does not match the cache or that explains too little
    # of these activations (untrained / random-init).
    sae = sae_lib.load_sae(
        ctx.parent("sae") / SAE_DIR,
        expected_d_in=tokens.shape[1],
        heldout=sample,
        min_explained_variance=ctx.params["min_explained_variance"],
    )
    codes = sae_lib.encode_pooled(sae, group)
    sae_lib.write_codes(ctx.out / CODES, codes)
    shutil.copyfile(extract_dir / EXAMPLES, ctx.out / EXAMPLES)
    write_json(ctx.out / "codes.json", {k: list(v.shape) for k, v in codes.items()})
