"""Stage `sae_stability`: PWMCC between SAEs trained with different seeds vs random dictionaries."""

from __future__ import annotations

import pandas as pd

from sae_difficulty.core.sae_metrics import stability_report
from sae_difficulty.pipeline.artifacts import SAE_DIR
from sae_difficulty.pipeline.runner import NodeContext
from sae_difficulty.saes.encoding import decoder_directions
from sae_difficulty.saes.loading import load_sae
from sae_difficulty.utils.io import write_experiment


def build(ctx: NodeContext) -> None:
    dictionaries = {
        role: decoder_directions(load_sae(path / SAE_DIR)) for role, path in ctx.parents_with_prefix("seed_").items()
    }
    report = stability_report(dictionaries, n_random=ctx.params["n_random"], seed=ctx.params["seed"])
    write_experiment(ctx.out, "stability", report, pd.DataFrame(report["pairs"]))
