"""Stage `ground_truth`: when several seeds agree, are they right? (the answer of the synthetic study)

Per recipe cell (architecture, L0 setting, width) over its seeds: PWMCC across seeds
against random dictionaries (Gaussian, shuffled decoder and, the verdict's baseline,
drawn from the held-out activations' covariance: ``core.seed_stability``) beside MCC to
the true dictionary, each with a seed-bootstrap CI; per alive feature, its cross-seed
stability against its recovery of a true feature (``core.ground_truth``: Spearman with a
two-level bootstrap CI, and the precision of "stable" as a detector of "true"); and the
verdict, derived from the mean within-cell correlation.

Writes ``answer.json`` (everything), ``answer.parquet`` (one row per cell),
``features.parquet`` (one row per feature), ``headline.json`` (the ledger line),
``ground_truth.md`` and ``figures/`` (MCC vs L0 per recipe; stability vs recovery).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from safetensors.numpy import load_file

from sae_difficulty.core import ground_truth
from sae_difficulty.core.seed_stability import (
    bootstrap_mean,
    seed_bootstrap_pair_mean,
    stability_with_controls,
)
from sae_difficulty.pipeline.artifacts import ACTIVATIONS, SAE_DIR
from sae_difficulty.pipeline.runner import NodeContext
from sae_difficulty.reports import ground_truth_report as report
from sae_difficulty.saes.cache import open_training_cache
from sae_difficulty.utils.errors import InputError
from sae_difficulty.utils.io import read_json, write_json, write_parquet

#: Held-out rows the covariance-matched baseline is estimated from (covariance of a d-dim cloud).
COVARIANCE_ROWS = 16384


def _decoder(sae_node: Path) -> np.ndarray:
    weights = sae_node / SAE_DIR / "sae_weights.safetensors"
    if not weights.is_file():
        raise InputError(f"{weights}: missing; expected an SAE saved by the sae stage")
    return np.asarray(load_file(str(weights))["W_dec"], dtype=np.float64)


def _cell_summary(cell: dict[str, Any], evals: list[dict[str, Any]], dictionaries: dict[str, np.ndarray],
                  heldout: np.ndarray, params: dict[str, Any]) -> dict[str, Any]:  # fmt: skip
    """One cell's row: MCC and PWMCC across its seeds with seed-bootstrap CIs, and the controls."""
    n_boot, seed = int(params["n_boot"]), int(params["seed"])
    mcc = np.array([e["mcc"] for e in evals])
    mcc_point, mcc_low, mcc_high = bootstrap_mean(mcc, n_boot, seed)
    stability = stability_with_controls(dictionaries, int(params["n_random"]), n_boot, seed, activations=heldout)
    pwmcc_point, pwmcc_low, pwmcc_high = seed_bootstrap_pair_mean(stability["pwmcc_matrix"], n_boot, seed)
    controls = stability["controls"]

    def mean(key: str) -> float:
        return float(np.mean([e[key] for e in evals]))

    return {
        "cell": cell["cell"], "architecture": cell["architecture"], "l0_setting": cell["l0_setting"],
        "expansion": cell["expansion"], "width": int(evals[0]["n_latents"]), "seeds": len(evals),
        "true_l0": mean("true_l0"), "sae_l0": mean("sae_l0"), "explained_variance": mean("explained_variance"),
        "dead_fraction": mean("dead_fraction"), "dense_fraction": mean("dense_fraction"), "shrinkage": mean("shrinkage"),
        "f1": float(np.mean([e["classification"]["f1_score"] for e in evals])),
        "mcc": mcc_point, "mcc_ci_low": mcc_low, "mcc_ci_high": mcc_high, "mcc_random": mean("random_mcc"),
        "true_recovered_fraction": mean("true_recovered_fraction"),
        "pwmcc": pwmcc_point, "pwmcc_ci_low": pwmcc_low, "pwmcc_ci_high": pwmcc_high,
        "pwmcc_random": controls["gaussian"]["mean"], "pwmcc_random_matched": controls["covariance"]["mean"],
        "pwmcc_gap_matched": controls["covariance"]["gap"], "pwmcc_gap_matched_ci_low": controls["covariance"]["gap_ci_low"],
        "pwmcc_gap_matched_ci_high": controls["covariance"]["gap_ci_high"],
    }  # fmt: skip


def build(ctx: NodeContext) -> None:
    params = ctx.params
    heldout_array = open_training_cache(ctx.parent("activations") / ACTIVATIONS).heldout
    heldout = np.asarray(heldout_array[: min(COVARIANCE_ROWS, heldout_array.shape[0])], dtype=np.float64)
    rows, feature_frames, per_cell = [], [], {}
    for cell in params["cells"]:
        evals, tables, dictionaries = [], [], {}
        for seed in cell["seeds"]:
            eval_dir = ctx.parent(f"eval__{cell['cell']}__s{seed}")
            evals.append(read_json(eval_dir / "ground_truth.json"))
            tables.append(pd.read_parquet(eval_dir / "ground_truth.parquet"))
            dictionaries[f"s{seed}"] = _decoder(ctx.parent(f"sae__{cell['cell']}__s{seed}"))
        rows.append(_cell_summary(cell, evals, dictionaries, heldout, params))
        matches = ground_truth.cross_seed_matches([dictionaries[f"s{seed}"] for seed in cell["seeds"]])
        seeds = []
        for seed, seed_matches, table in zip(cell["seeds"], matches, tables):
            features = ground_truth.SeedFeatures(seed_matches, table["best_cosine"].to_numpy(), table["firing_rate"].to_numpy() > 0)
            seeds.append(features)
            feature_frames.append(pd.DataFrame({
                "cell": cell["cell"], "architecture": cell["architecture"], "seed": seed, "latent": table["latent"],
                "alive": features.alive, "stability": ground_truth.stability_scores(seed_matches),
                "worst_other_seed_match": seed_matches.min(axis=1), "recovery": features.recovery,
                "stable": ground_truth.is_stable(seed_matches, params["stable_threshold"]),
                "true": features.recovery >= params["true_threshold"],
            }))  # fmt: skip
        per_cell[cell["cell"]] = seeds
    analysis = ground_truth.stability_vs_recovery(per_cell, params["stable_threshold"], params["true_threshold"],
                                                  int(params["n_boot"]), int(params["seed"]))  # fmt: skip
    margin = float(params["equivalence_margin"])
    for row in rows:
        entry = analysis["cells"][row["cell"]]
        row.update({key: entry[key] for key in ("spearman", "precision", "true_among_unstable", "base_rate", "recall",
                                                "stable_fraction", "lift", "n_features")})  # fmt: skip
        row["spearman_ci_low"], row["spearman_ci_high"] = entry["spearman_ci95"]
        row["lift_ci_low"], row["lift_ci_high"] = entry["lift_ci95"]
        row["verdict"] = ground_truth.stability_verdict(entry["spearman_ci95"], entry["spearman_ci90"], margin)
    verdict = ground_truth.stability_verdict(analysis["mean_spearman_ci95"], analysis["mean_spearman_ci90"], margin)
    table = pd.DataFrame(rows)
    features = pd.concat(feature_frames, ignore_index=True)
    detail = {
        "settings": report.settings(params, read_json(ctx.parent("model") / "synthetic_model.json"),
                                    read_json(ctx.parent("activations") / "synthetic_activations.json")),
        "verdict": verdict, "verdict_words": list(ground_truth.verdict_words(margin)), "equivalence_margin": margin,
        "analysis": analysis, "cells": rows, "across_cells": report.across_cells(table),
    }  # fmt: skip
    write_json(ctx.out / "answer.json", detail)
    write_parquet(ctx.out / "answer.parquet", table)
    write_parquet(ctx.out / "features.parquet", features)
    write_json(ctx.out / "headline.json", report.headline(detail))
    report.write_figures(table, features, ctx.out / report.FIGURES)
    (ctx.out / report.REPORT).write_text(report.markdown(detail, table))
