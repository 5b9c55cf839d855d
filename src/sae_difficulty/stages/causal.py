"""Stage `causal`: ablate the top probe features in the SAE reconstruction (Q2)."""

from __future__ import annotations

import pandas as pd

from sae_difficulty.core.stats import feature_effect_tests
from sae_difficulty.modalities import load_backbone
from sae_difficulty.pipeline.artifacts import (
    ACTIVATIONS,
    SAE_DIR,
    open_zarr_group,
    read_array,
)
from sae_difficulty.pipeline.runner import NodeContext
from sae_difficulty.reports.figures import plot_feature_effects
from sae_difficulty.saes.loading import load_sae
from sae_difficulty.stages.probe import top_sae_features
from sae_difficulty.utils.io import write_experiment, write_parquet

POSITIONS = ("last", "all")


def summarize(deltas: pd.DataFrame, features: list[int], alpha: float, correction: str) -> tuple[dict, pd.DataFrame]:
    """Per positions mode: paired test of each feature's Δ across examples, corrected; k/n significant."""
    detail, frames = {}, []
    for positions in POSITIONS:
        subset = deltas[deltas["positions"] == positions]
        wide = subset.pivot(index="id", columns="feature", values="delta").reindex(columns=features)
        tests = feature_effect_tests(wide.to_numpy(), alpha=alpha, correction=correction)
        tests.insert(0, "feature", features)
        tests.insert(0, "positions", positions)
        frames.append(tests)
        detail[positions] = {
            "n_examples": int(wide.shape[0]),
            "n_significant": int(tests["significant"].sum()),
            "n_features": len(features),
            "tests": tests,
        }
    return detail, pd.concat(frames, ignore_index=True)


def build(ctx: NodeContext) -> None:
    params = ctx.params
    features = top_sae_features(ctx.parent("probe"), params["n_features"])
    cache_path = ctx.parent("activations") / ACTIVATIONS
    heldout = read_array(open_zarr_group(cache_path, "SAE training cache"), "heldout", cache_path)
    sae = load_sae(
        ctx.parent("sae") / SAE_DIR, expected_d_in=heldout.shape[1], heldout=heldout,
        min_explained_variance=params["min_explained_variance"],
    )  # fmt: skip
    modality, model = load_backbone(ctx.parent("backbone"))
    deltas = modality.causal_patch(model, sae, ctx.parent("tasks"), params["layer"], features, params, params["seed"])
    write_parquet(ctx.out / "deltas.parquet", deltas)
    detail, table = summarize(deltas, features, params["alpha"], params["correction"])
    write_experiment(ctx.out, "causal", {"features": features, "alpha": params["alpha"],
                                         "correction": params["correction"], "by_positions": detail}, table)  # fmt: skip
    plot_feature_effects(table, ctx.out / "causal_effects.png", "Δ loss from ablating top probe features")
