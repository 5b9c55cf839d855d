"""Stage `sae_stability`: PWMCC between SAEs trained with different seeds vs random dictionaries."""

from __future__ import annotations

import numpy as np
import pandas as pd

from sae_difficulty import sae as sae_lib
from sae_difficulty.core.sae_metrics import stability_report
from sae_difficulty.io import write_experiment
from sae_difficulty.scripting import NodeContext
from sae_difficulty.stages.common import SAE_DIR


def decoder_rows(sae) -> np.ndarray:
    return sae.W_dec.detach().cpu().numpy().astype(np.float64)


def build(ctx: NodeContext) -> None:
    dictionaries = {
        role: decoder_rows(sae_lib.load_sae(path / SAE_DIR)) for role, path in ctx.parents_with_prefix("seed_").items()
    }
    report = stability_report(dictionaries, n_random=ctx.params["n_random"], seed=ctx.params["seed"])
    names = sorted(dictionaries)
    matrix = np.asarray(report["pwmcc_matrix"]) if "pwmcc_matrix" in report else None
    rows = []
    if matrix is not None:
        for i, a in enumerate(names):
            for j, b in enumerate(names):
                if i < j:
                    rows.append({"a": a, "b": b, "pwmcc": float(matrix[i, j])})
    write_experiment(ctx.out, "stability", report, pd.DataFrame(rows, columns=["a", "b", "pwmcc"]))
