"""Stage `sae_pretrained`: a published SAE, resolved with sae-lens' registry, in place of a trained one.

``SAE.from_pretrained(release, sae_id)`` reads the release (offline: from the Hugging Face
cache); the SAE must read the residual stream of the probed layer; it is saved into the node
in sae-lens' format (``sae/cfg.json`` + ``sae/sae_weights.safetensors``, what the ``sae`` stage
writes), so codes, probes, causal patching, quality and the evaluation suite read it as they
read a trained SAE. Before that, the encode-fidelity check: the saved files' own encoding
(recomputed in numpy) must reproduce sae-lens' codes of the loaded SAE on held-out rows of the
layer's activation cache, and the project's sae-lens-free reader must accept the files.
``pretrained.json`` records release, sae_id, the resolved repository, folder and revision,
the sha256 of each resolved file and the check.
"""

from __future__ import annotations

import numpy as np

from sae_difficulty.evals.encode_fidelity import (
    EncodeFidelityConfig,
    require_encode_fidelity,
)
from sae_difficulty.pipeline.artifacts import (
    ACTIVATIONS,
    SAE_DIR,
    open_zarr_group,
    read_array,
)
from sae_difficulty.pipeline.runner import NodeContext
from sae_difficulty.saes.checkpoint import read_checkpoint
from sae_difficulty.saes.pretrained import load_pretrained, require_hook
from sae_difficulty.utils.errors import InputError
from sae_difficulty.utils.io import write_json

PRETRAINED_RECORD = "pretrained.json"


def build(ctx: NodeContext) -> None:
    params = ctx.params
    release, sae_id, layer = params["release"], params["sae_id"], int(params["layer"])
    cache_path = ctx.parent("activations") / ACTIVATIONS
    heldout = read_array(open_zarr_group(cache_path, "SAE training cache"), "heldout", cache_path)
    sae, resolved = load_pretrained(release, sae_id)
    hook_name = sae.cfg.metadata.hook_name
    require_hook(hook_name, layer, release, sae_id)
    if int(sae.cfg.d_in) != heldout.shape[1]:
        raise InputError(
            f"config key 'sae.pretrained.llm': {release}/{sae_id} has d_in={sae.cfg.d_in}; "
            f"expected the width of layer {layer}'s activations, {heldout.shape[1]}"
        )
    sae_dir = ctx.out / SAE_DIR
    sae.save_model(sae_dir)
    checkpoint = read_checkpoint(sae_dir, expected_d_in=heldout.shape[1])
    fidelity = EncodeFidelityConfig.from_dict(params["encode_fidelity"])
    rows = np.asarray(heldout[: fidelity.n_rows], dtype=np.float32)
    check = require_encode_fidelity(sae, sae_dir, "saelens", rows, fidelity)
    write_json(ctx.out / PRETRAINED_RECORD, {
        "release": release, "sae_id": sae_id, **resolved.to_dict(), "hook_name": hook_name,
        "architecture": sae.cfg.architecture(), "project_architecture": checkpoint.architecture,
        "d_in": int(sae.cfg.d_in), "d_sae": int(sae.cfg.d_sae), "model_name": sae.cfg.metadata.model_name,
        "neuronpedia_id": getattr(sae.cfg.metadata, "neuronpedia_id", None), "encode_fidelity": {**check.to_dict(), "path": SAE_DIR},  # the node's copy (checked in its temporary directory)
    })  # fmt: skip
