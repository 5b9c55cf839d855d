"""Stage `sae_quality`: held-out reconstruction, sparsity, dead features and spliced loss.

The SAE is read with the sae-lens-free reader (``saes.checkpoint``: sae-lens' own
encode/decode on the same files); the spliced loss hooks the backbone, not sae-lens, so
a TSFM job never imports sae-lens or TransformerLens.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from sae_difficulty.modalities import load_backbone
from sae_difficulty.pipeline.artifacts import (
    ACTIVATIONS,
    SAE_DIR,
    open_zarr_group,
    read_array,
)
from sae_difficulty.pipeline.runner import NodeContext
from sae_difficulty.saes.checkpoint import read_checkpoint
from sae_difficulty.saes.quality import evaluate_quality, plot_feature_frequency
from sae_difficulty.utils.io import write_experiment


def build(ctx: NodeContext) -> None:
    params = ctx.params
    cache_path = ctx.parent("activations") / ACTIVATIONS
    heldout = read_array(open_zarr_group(cache_path, "SAE training cache"), "heldout", cache_path)
    sae = read_checkpoint(ctx.parent("sae") / SAE_DIR, expected_d_in=heldout.shape[1])
    result = evaluate_quality(sae, heldout)
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
    plot_feature_frequency(frequencies, ctx.out / "feature_frequency.png", "SAE feature firing frequency (held-out)")
