"""Stage `sae_quality`: held-out reconstruction, sparsity, dead features and spliced loss."""

from __future__ import annotations

import numpy as np
import pandas as pd

from sae_difficulty import sae as sae_lib
from sae_difficulty.io import write_experiment
from sae_difficulty.scripting import NodeContext
from sae_difficulty.stages.common import ACTIVATIONS, SAE_DIR, load_backbone, open_zarr_group, read_array


def build(ctx: NodeContext) -> None:
    params = ctx.params
    cache_path = ctx.parent("activations") / ACTIVATIONS
    heldout = read_array(open_zarr_group(cache_path, "SAE training cache"), "heldout", cache_path)
    sae = sae_lib.load_sae(ctx.parent("sae") / SAE_DIR, expected_d_in=heldout.shape[1])
    result = sae_lib.evaluate_quality(sae, heldout)
    quality, frequencies = dict(result.metrics), np.asarray(result.feature_frequency)
    modality, model = load_backbone(ctx.parent("backbone"))
    spliced = modality.spliced_loss(model, sae, params["layer"], params["spliced_loss"], params["seed"])
    detail = {
        **quality,
        "spliced": spliced,
        "min_explained_variance": params["min_explained_variance"],
        "passes_floor": bool(quality["explained_variance"] >= params["min_explained_variance"]),
    }
    table = pd.DataFrame({"feature": np.arange(len(frequencies)), "frequency": frequencies})
    write_experiment(ctx.out, "quality", detail, table)
    sae_lib.plot_feature_frequency(frequencies, ctx.out / "feature_frequency.png", "SAE feature firing frequency (held-out)")
