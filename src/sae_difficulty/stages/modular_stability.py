"""Stage `modular_stability`: SAE quality, seed stability and Fourier recovery vs random dictionaries.

Reads the backbone (for W_E / W_U), the activation cache (all p*p inputs) and every
SAE (parent roles ``<architecture>_s<seed>``). Writes ``stability.json`` (full
detail), ``stability.parquet`` (one row per architecture: the report's table),
``saes.parquet`` (one row per SAE), ``pairs.parquet`` (one row per seed pair),
``spectrum.parquet`` (W_E's Fourier spectrum), ``stability.md`` and ``figures/``.
The view ``reports.views.publish_modular`` copies the human-facing ones to ``results/modular/``.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from sae_difficulty.core import fourier
from sae_difficulty.core.seed_stability import (
    score_with_controls,
    stability_with_controls,
)
from sae_difficulty.modalities.modular import model as modular
from sae_difficulty.pipeline.artifacts import (
    ACTIVATIONS,
    MODEL_DIR,
    SAE_DIR,
    open_zarr_group,
    read_array,
    read_table,
)
from sae_difficulty.pipeline.runner import NodeContext
from sae_difficulty.reports.modular_report import (
    FIGURES,
    REPORT,
    plot_against_controls,
    plot_fourier_spectrum,
    plot_pwmcc_matrices,
    render_report,
)
from sae_difficulty.saes.encoding import decoder_directions
from sae_difficulty.saes.loading import load_sae
from sae_difficulty.saes.quality import evaluate_quality
from sae_difficulty.stages.modular_activations import INPUTS
from sae_difficulty.stages.modular_backbone import CURVES_FIGURE, TRAINING
from sae_difficulty.utils.errors import InputError
from sae_difficulty.utils.io import read_json, write_experiment, write_parquet

DIRECTION_DESCRIPTIONS = {
    "unembed": "W_U c_k: the residual directions whose readout through the unembedding is the wave cos/sin(2πkc/p) "
               "over answers c, i.e. what the `=` position must carry for the logits (Nanda et al.'s output waves).",
    "embed": "W_E^T c_k: the waves over number tokens as the embedding writes them into the residual stream "
             "(at the a and b positions).",
    "activations": "least-squares slopes of this layer's activations on cos/sin(2πk(a+b)/p) over all inputs: where "
                   "the layer represents the answer's waves, whatever the weights that put them there.",
}  # fmt: skip


def fourier_directions(model: Any, p: int, activations: np.ndarray, pairs: np.ndarray,
                       frequencies: np.ndarray) -> dict[str, np.ndarray]:  # fmt: skip
    """The three ground-truth direction sets ``[2n, d_model]`` of the key frequencies (see DIRECTION_DESCRIPTIONS)."""
    return {
        "unembed": fourier.token_directions(modular.unembedding(model).T, p, frequencies),
        "embed": fourier.token_directions(modular.number_embeddings(model, p), p, frequencies),
        "activations": fourier.sum_feature_directions(activations, pairs, p, frequencies),
    }


def _described_saes(ctx: NodeContext) -> list[dict[str, Any]]:
    described = ctx.params["saes"]
    for entry in described:
        ctx.parent(entry["role"])  # one-line error when a role is missing
    return described


def _overlap_score(directions: np.ndarray) -> Callable[[np.ndarray], float]:
    return lambda dictionary: fourier.fourier_overlap(directions, dictionary)


def _architecture_rows(per_sae: pd.DataFrame, stability: dict, overlap: dict) -> pd.DataFrame:
    """The report's table: one row per architecture (quality means, PWMCC and Fourier overlap vs controls)."""
    records = []
    for architecture in sorted(stability):
        rows = per_sae[per_sae["architecture"] == architecture]
        record: dict[str, Any] = {"architecture": architecture, "n_saes": len(rows)}
        for column in ("explained_variance", "l0", "dead_fraction"):
            record[f"{column}_mean"] = float(rows[column].mean())
            record[f"{column}_sd"] = float(rows[column].std(ddof=1)) if len(rows) > 1 else 0.0
        report, score = stability[architecture], overlap[architecture]
        record["pwmcc_mean"], record["pwmcc_sd"] = report["pwmcc_mean"], report["pwmcc_sd"]
        record["fourier_overlap_mean"], record["fourier_overlap_sd"] = score["mean"], score["sd"]
        for kind in report["controls"]:
            for prefix, gap_prefix, control in (("pwmcc", "pwmcc_gap", report["controls"][kind]),
                                                ("fourier_overlap", "fourier_gap", score["controls"][kind])):  # fmt: skip
                record[f"{prefix}_{kind}"], record[f"{prefix}_{kind}_sd"] = control["mean"], control["sd"]
                record[f"{gap_prefix}_{kind}"] = control["gap"]
                record[f"{gap_prefix}_{kind}_ci_low"] = control["gap_ci_low"]
                record[f"{gap_prefix}_{kind}_ci_high"] = control["gap_ci_high"]
        record["pwmcc_gaussian_expected"] = report["gaussian_expected"]
        records.append(record)
    return pd.DataFrame.from_records(records)


def _quality_and_decoders(ctx: NodeContext, described: list[dict[str, Any]], heldout: np.ndarray,
                          primary: np.ndarray) -> tuple[pd.DataFrame, dict[str, dict[str, np.ndarray]]]:  # fmt: skip
    """Per SAE: EV, L0 and dead fraction on all inputs and its Fourier overlap; decoders by architecture."""
    records, decoders = [], {}
    for entry in described:
        sae_dir = ctx.parent(entry["role"])
        sae = load_sae(sae_dir / SAE_DIR, expected_d_in=heldout.shape[1])
        quality = evaluate_quality(sae, heldout).metrics
        decoder = decoder_directions(sae)
        decoders.setdefault(entry["architecture"], {})[entry["role"]] = decoder
        records.append({"role": entry["role"], "architecture": entry["architecture"], "seed": entry["seed"],
                        "d_sae": quality["d_sae"], "explained_variance": quality["explained_variance"],
                        "l0": quality["mean_l0"], "dead_fraction": quality["dead_fraction"],
                        "fourier_overlap": fourier.fourier_overlap(primary, decoder), "sae_node": sae_dir.name})  # fmt: skip
    return pd.DataFrame.from_records(records).sort_values(["architecture", "seed"], ignore_index=True), decoders


def _write_figures(out: Path, backbone_dir: Path, spectrum: np.ndarray, keys: np.ndarray, p: int, stability: dict,
                   table: pd.DataFrame) -> list[str]:  # fmt: skip
    figures = out / FIGURES
    figures.mkdir()
    shutil.copyfile(backbone_dir / CURVES_FIGURE, figures / CURVES_FIGURE)
    plot_fourier_spectrum(spectrum, keys, figures / "fourier_spectrum.png", p)
    plot_pwmcc_matrices({a: (stability[a]["names"], stability[a]["pwmcc_matrix"]) for a in stability}, figures / "pwmcc_matrices.png")
    plot_against_controls(table, figures / "against_controls.png")
    return [CURVES_FIGURE, "fourier_spectrum.png", "pwmcc_matrices.png", "against_controls.png"]


def build(ctx: NodeContext) -> None:
    params = ctx.params
    seed, n_random, n_boot = params["seed"], params["n_random"], params["n_boot"]
    described = _described_saes(ctx)
    backbone_dir, activations_dir = ctx.parent("backbone"), ctx.parent("activations")
    model, spec = modular.load_model(backbone_dir / MODEL_DIR)
    cache_path = activations_dir / ACTIVATIONS
    heldout = read_array(open_zarr_group(cache_path, "SAE training cache"), "heldout", cache_path)
    pairs = read_table(activations_dir / INPUTS, "modular inputs table")[["a", "b"]].to_numpy()
    if heldout.shape[0] != spec.p**2 or len(pairs) != spec.p**2:
        raise InputError(f"{cache_path}: expected {spec.p**2} rows (all pairs for p={spec.p}), got {heldout.shape[0]}")

    embeddings = modular.number_embeddings(model, spec.p)
    spectrum = fourier.frequency_norms(embeddings, spec.p)
    keys = fourier.key_frequencies(embeddings, spec.p, params["n_key_frequencies"])
    direction_sets = fourier_directions(model, spec.p, heldout, pairs, keys)
    primary_kind = params["fourier_directions"]
    if primary_kind not in direction_sets:
        raise InputError(f"modular.fourier_directions: {primary_kind!r}, expected one of {sorted(direction_sets)}")
    per_sae, decoders = _quality_and_decoders(ctx, described, heldout, direction_sets[primary_kind])

    stability, overlaps = {}, {kind: {} for kind in direction_sets}
    for index, architecture in enumerate(sorted(decoders)):
        arch_seed = seed + 7919 * index  # distinct, fixed random streams per architecture
        stability[architecture] = stability_with_controls(decoders[architecture], n_random, n_boot, arch_seed, heldout)
        for kind, directions in direction_sets.items():
            overlaps[kind][architecture] = score_with_controls(decoders[architecture], _overlap_score(directions),
                                                               n_random, n_boot, arch_seed, heldout)  # fmt: skip
    table = _architecture_rows(per_sae, stability, overlaps[primary_kind])

    d_sae, d_model = int(per_sae["d_sae"].iloc[0]), heldout.shape[1]
    basis, _ = fourier.fourier_basis(spec.p)
    total_energy = float(np.sum((basis[1:] @ embeddings) ** 2))
    detail = {
        "node_id": ctx.node_id, "backbone_node": backbone_dir.name, "activations_node": activations_dir.name,
        "layer": params["layer"], "expansion": params["expansion"], "saes": described,
        "n_random": n_random, "n_boot": n_boot, "seed": seed,
        "backbone": spec.to_dict(), "training": read_json(backbone_dir / TRAINING),
        "fourier": {
            "key_frequencies": keys, "spectrum": spectrum, "key_share": float(np.sum(spectrum[keys - 1] ** 2) / total_energy),
            "primary": primary_kind, "descriptions": DIRECTION_DESCRIPTIONS,
            "overlap_by_directions": overlaps,
            "direction_norms": {kind: np.linalg.norm(v, axis=1) for kind, v in direction_sets.items()},
        },
        "closed_form": {
            "pwmcc_gaussian": next(iter(stability.values()))["gaussian_expected"],
            "fourier_overlap_gaussian": fourier.expected_random_max_abs_cosine(d_sae, d_model),
        },
        "stability": stability, "table": table, "per_sae": per_sae,
    }  # fmt: skip

    write_experiment(ctx.out, "stability", detail, table)
    write_parquet(ctx.out / "saes.parquet", per_sae)
    write_parquet(ctx.out / "pairs.parquet", pd.concat(
        [pd.DataFrame(stability[a]["pairs"]).assign(architecture=a) for a in sorted(stability)], ignore_index=True))  # fmt: skip
    frequencies = np.arange(1, spectrum.size + 1)
    write_parquet(ctx.out / "spectrum.parquet", pd.DataFrame({"frequency": frequencies, "norm": spectrum,
                                                              "key": np.isin(frequencies, keys)}))  # fmt: skip
    names = _write_figures(ctx.out, backbone_dir, spectrum, keys, spec.p, stability, table)
    (ctx.out / REPORT).write_text(render_report(detail, table, per_sae, names))
