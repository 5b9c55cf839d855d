"""Stage `sae_stability`: PWMCC between SAEs trained with different seeds vs random dictionaries.

Two baselines of the same shapes: isotropic random dictionaries (``random_*``) and
random dictionaries drawn from the covariance of the SAEs' own held-out activations
(``matched_*``); the stability verdict (``stable_beyond_matched``) uses the matched one.
For the primary recipe, ``halves_pwmcc`` is the PWMCC of two SAEs trained on disjoint
halves of the cache (parents ``half_*``).

Only the decoders are compared: the checkpoints are read with the sae-lens-free reader
(``saes.checkpoint``, numpy only), since importing sae-lens would cost each job more CPU
than its work.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from sae_difficulty.core.sae_metrics import pwmcc
from sae_difficulty.core.stability_baselines import matched_stability_report
from sae_difficulty.pipeline.artifacts import (
    ACTIVATIONS,
    SAE_DIR,
    open_zarr_group,
    read_array,
)
from sae_difficulty.pipeline.runner import NodeContext
from sae_difficulty.saes.checkpoint import read_checkpoint
from sae_difficulty.utils.io import write_experiment

#: Held-out activation rows the covariance is estimated from (evenly spaced when there are more).
COVARIANCE_ROWS = 20_000


def build(ctx: NodeContext) -> None:
    dictionaries = {
        role: read_checkpoint(path / SAE_DIR).decoder_directions() for role, path in ctx.parents_with_prefix("seed_").items()
    }
    cache_path = ctx.parent("activations") / ACTIVATIONS
    heldout = read_array(open_zarr_group(cache_path, "SAE training cache"), "heldout", cache_path)
    rows = np.unique(np.linspace(0, heldout.shape[0] - 1, min(COVARIANCE_ROWS, heldout.shape[0])).astype(int))
    report = matched_stability_report(dictionaries, np.asarray(heldout[rows]), n_random=ctx.params["n_random"],
                                      seed=ctx.params["seed"])  # fmt: skip
    halves = ctx.parents_with_prefix("half_")
    if halves:  # the primary recipe on disjoint halves of the cache
        first, second = (read_checkpoint(path / SAE_DIR).decoder_directions() for path in halves.values())
        report["halves_pwmcc"] = pwmcc(first, second)
    write_experiment(ctx.out, "stability", report, pd.DataFrame(report["pairs"]))
