"""Stage `sae_stability`: PWMCC between SAEs trained with different seeds vs random dictionaries."""

from __future__ import annotations

import pandas as pd

from sae_difficulty import sae as sae_lib
from sae_difficulty.core.sae_metrics import stability_report
from sae_difficulty.io import write_experiment
from sae_difficulty.scripting import NodeContext
from sae_difficulty.stages.common import SAE_DIR


def build(ctx: NodeContext) -> None:
    dictionaries = {
        role: sae_lib.decoder_directions(sae_lib.load_sae(path / SAE_DIR)) for role, path in ctx.parents_with_prefix("seed_").items()
    }
    report = stability_report(dictionaries, n_random=ctx.params["n_random"], seed=ctx.params["seed"])
    write_experiment(ctx.out, "stability", report, pd.DataFrame(report["pairs"]))
