"""Stage `modular_activations`: the residual stream over every input, as an SAE training cache.

``activations.zarr`` holds float32 ``train`` and ``heldout`` ``[p*p, d_model]``: the
``blocks.{layer}.hook_resid_post`` activation at the ``=`` position for every pair
``(a, b)``, rows ``a*p + b``. Both arrays hold all ``p*p`` inputs: the input space is
finite and fully enumerated, so the population the SAEs should describe is exactly
these rows and quality is measured on all of them (there is no unseen input to hold
out). ``inputs.parquet`` names each row's ``a``, ``b``, ``answer`` and the backbone's
``split`` (train/test pairs of the transformer).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from sae_difficulty.modalities.modular import model as modular
from sae_difficulty.pipeline.artifacts import ACTIVATIONS, MODEL_DIR
from sae_difficulty.pipeline.runner import NodeContext
from sae_difficulty.saes.cache import write_training_cache
from sae_difficulty.utils.io import write_json, write_parquet

INPUTS = "inputs.parquet"
SUMMARY = "activations.json"


def build(ctx: NodeContext) -> None:
    layer = ctx.params["layer"]
    model, spec = modular.load_model(ctx.parent("backbone") / MODEL_DIR)
    activations = modular.residual_activations(model, spec.p, layer)
    write_training_cache(ctx.out / ACTIVATIONS, train=activations, heldout=activations)
    pairs = modular.all_pairs(spec.p)
    is_train = modular.train_mask(spec.p, spec.train_fraction, spec.seed)
    write_parquet(ctx.out / INPUTS, pd.DataFrame({
        "row": np.arange(pairs.shape[0]), "a": pairs[:, 0], "b": pairs[:, 1], "answer": pairs.sum(axis=1) % spec.p,
        "split": np.where(is_train, "train", "test"),
    }))  # fmt: skip
    write_json(ctx.out / SUMMARY, {
        "layer": layer, "hook": f"blocks.{layer}.hook_resid_post", "position": "= (last)", "p": spec.p,
        "n_rows": int(activations.shape[0]), "d_model": int(activations.shape[1]),
        "heldout": "all p*p inputs (the finite input space; same rows as train)",
        "mean_norm": float(np.linalg.norm(activations.astype(np.float64), axis=1).mean()),
    })  # fmt: skip
