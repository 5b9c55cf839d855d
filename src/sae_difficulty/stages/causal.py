"""Stage `causal`: ablate the top probe features in the SAE reconstruction (Q2), beside matched random sets.

The top features come from the P5 probe fitted on training examples only; the patched
examples are test examples only (both modalities), less those the probe's filters dropped. ``n_random_sets`` control sets of
the same size, each member matched to a top feature's firing-frequency decile (on the
held-out SAE cache), go through the same patching and the same corrected test; their
k gives the control distribution of the top features' k. Overlapping windows (the tasks'
split table has a ``window`` grid position) are dependent, so their Δs are first averaged
within blocks of ``block_length`` grid positions (null = twice the overlap, as the probe)
and the tests run on the block means; the LM's examples are tested one by one.
"""

from __future__ import annotations

from typing import Mapping

import pandas as pd

from sae_difficulty.core.causal_control import control_summary, matched_random_sets
from sae_difficulty.core.resampling import default_block_length
from sae_difficulty.core.sae_metrics import feature_frequencies
from sae_difficulty.core.stats import feature_effect_tests
from sae_difficulty.modalities import load_backbone
from sae_difficulty.pipeline.artifacts import (
    ACTIVATIONS,
    EXAMPLES,
    SAE_DIR,
    open_zarr_group,
    read_array,
    read_table,
)
from sae_difficulty.pipeline.runner import NodeContext
from sae_difficulty.reports.figures import plot_feature_effects
from sae_difficulty.saes.encoding import encode_rows
from sae_difficulty.saes.loading import load_sae
from sae_difficulty.stages.probe import dropped_ids, top_sae_features
from sae_difficulty.utils.io import read_json, write_experiment, write_parquet

POSITIONS = ("last", "all")


def window_blocks(tasks_dir, block_length: int | None) -> dict[str, int] | None:
    """Example id -> block of ``block_length`` window grid positions, for time-ordered windows; else None."""
    examples = read_table(tasks_dir / EXAMPLES, "split table")
    if "window" not in examples.columns:
        return None
    if block_length is None:
        block_length = default_block_length(read_json(tasks_dir / "tasks.json")["overlap_windows"])
    return dict(zip(examples["id"], (examples["window"] // int(block_length)).astype(int)))


def count_significant(
    deltas: pd.DataFrame, positions: str, features: list[int], alpha: float, correction: str,
    blocks: Mapping[str, int] | None = None,
) -> pd.DataFrame:  # fmt: skip
    """The corrected per-feature tests of one feature set at one positions mode (on block means when ``blocks``)."""
    subset = deltas[(deltas["positions"] == positions) & deltas["feature"].isin(features)]
    if blocks is not None:
        subset = subset.assign(id=subset["id"].map(blocks)).groupby(["id", "feature"], as_index=False)["delta"].mean()
    wide = subset.pivot(index="id", columns="feature", values="delta").reindex(columns=features)
    tests = feature_effect_tests(wide.to_numpy(), alpha=alpha, correction=correction)
    tests.insert(0, "feature", features)
    tests.insert(0, "positions", positions)
    return tests


def summarize(
    deltas: pd.DataFrame, features: list[int], alpha: float, correction: str, random_sets: list[list[int]] | None = None,
    blocks: Mapping[str, int] | None = None,
) -> tuple[dict, pd.DataFrame]:  # fmt: skip
    """Per positions mode: paired test of each feature's Δ across examples (or ``blocks`` of them), corrected;
    k/n significant, and, with ``random_sets``, the same count for every random set and its summary (``control``)."""
    detail, frames = {}, []
    for positions in POSITIONS:
        tests = count_significant(deltas, positions, features, alpha, correction, blocks)
        frames.append(tests)
        k = int(tests["significant"].sum())
        control = None
        if random_sets:
            k_random = [int(count_significant(deltas, positions, s, alpha, correction, blocks)["significant"].sum())
                        for s in random_sets]  # fmt: skip
            control = control_summary(k, k_random)
        detail[positions] = {
            "n_examples": int(deltas.loc[deltas["positions"] == positions, "id"].nunique()),
            "n_test_units": int(tests["n"].iloc[0]),
            "n_significant": k,
            "n_features": len(features),
            "tests": tests,
            "control": control,
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
    frequencies = feature_frequencies(encode_rows(sae, heldout))
    random_sets = matched_random_sets(frequencies, features, params["n_random_sets"], params["seed"])
    patched = features + sorted({f for s in random_sets for f in s} - set(features))
    modality, model = load_backbone(ctx.parent("backbone"))
    # The examples the probe's filters dropped (near-duplicate / memorised prompts) are not patched either.
    patch_params = {**params, "exclude_ids": dropped_ids(ctx.parent("probe"))}
    deltas = modality.causal_patch(model, sae, ctx.parent("tasks"), params["layer"], patched, patch_params, params["seed"])
    write_parquet(ctx.out / "deltas.parquet", deltas)
    blocks = window_blocks(ctx.parent("tasks"), params.get("block_length"))
    detail, table = summarize(deltas, features, params["alpha"], params["correction"], random_sets, blocks)
    write_experiment(ctx.out, "causal", {"features": features, "alpha": params["alpha"], "correction": params["correction"],
                                         "random_sets": random_sets, "top_feature_frequency": frequencies[features].tolist(),
                                         "tested_on": "example" if blocks is None else "block means of windows",
                                         "by_positions": detail}, table)  # fmt: skip
    plot_feature_effects(table, ctx.out / "causal_effects.png", "Δ loss from ablating top probe features")
