"""Figures, the markdown report and the views of the modular-arithmetic stability study.

Works on the ``modular_stability`` node's detail dict and tables (no model, no torch,
so the view rule and the synthesis import it cheaply): matplotlib ``Figure`` objects
with an explicit Agg canvas and PNGs without the "Software" metadata, so equal inputs
give equal bytes; :func:`publish` (the ``modular_report`` view rule) and
:func:`synthesis_rows` (the synthesis' SAE section).
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from sae_difficulty.utils.io import read_json

DPI = 120
REPORT = "stability.md"
DETAIL = "stability.json"
TABLE = "stability.parquet"
FIGURES = "figures"
CONTROL_LABELS = {"gaussian": "Gaussian random", "shuffled": "shuffled decoder"}


def _save(figure: Figure, path: str | os.PathLike) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    FigureCanvasAgg(figure)
    figure.tight_layout()
    figure.savefig(path, dpi=DPI, format="png", metadata={"Software": None})
    return path


def plot_pwmcc_matrices(matrices: Mapping[str, tuple[Sequence[str], np.ndarray]], path: str | os.PathLike) -> Path:
    """One heatmap per architecture of PWMCC between seeds (values written in the cells)."""
    figure = Figure(figsize=(4.2 * len(matrices), 3.8))
    axes = np.atleast_1d(figure.subplots(1, len(matrices)))
    for axis, (architecture, (names, matrix)) in zip(axes, sorted(matrices.items())):
        image = axis.imshow(matrix, vmin=0.0, vmax=1.0, cmap="viridis")
        axis.set_xticks(range(len(names)), names, rotation=45, ha="right", fontsize=8)
        axis.set_yticks(range(len(names)), names, fontsize=8)
        for (i, j), value in np.ndenumerate(matrix):
            axis.text(j, i, f"{value:.2f}", ha="center", va="center", fontsize=7, color="white" if value < 0.6 else "black")
        axis.set_title(f"{architecture}: PWMCC across seeds")
        figure.colorbar(image, ax=axis, fraction=0.046)
    return _save(figure, path)


def plot_against_controls(table: pd.DataFrame, path: str | os.PathLike) -> Path:
    """Per architecture: PWMCC and Fourier overlap of the trained SAEs next to their random controls."""
    figure = Figure(figsize=(10, 3.8))
    axes = figure.subplots(1, 2)
    panels = (("pwmcc", "PWMCC across seeds"), ("fourier_overlap", "Fourier overlap (mean max |cos|)"))
    width = 0.27
    x = np.arange(len(table))
    for axis, (metric, title) in zip(axes, panels):
        series = [("trained SAEs", f"{metric}_mean", f"{metric}_sd", "tab:blue")]
        series += [(CONTROL_LABELS[kind], f"{metric}_{kind}", f"{metric}_{kind}_sd", colour)
                   for kind, colour in (("gaussian", "tab:gray"), ("shuffled", "tab:orange"))]  # fmt: skip
        for offset, (label, column, sd_column, colour) in enumerate(series):
            axis.bar(x + (offset - 1) * width, table[column], width, yerr=table[sd_column], color=colour, label=label,
                     capsize=3)  # fmt: skip
        axis.set_xticks(x, table["architecture"])
        axis.set_ylim(0, 1.05)
        axis.set_title(title)
        axis.legend(fontsize=8, loc="upper right")
    return _save(figure, path)


def plot_fourier_spectrum(norms: Sequence[float], key_frequencies: Sequence[int], path: str | os.PathLike, p: int) -> Path:
    """Norm of the number-token embedding on each frequency, key frequencies highlighted."""
    norms = np.asarray(norms, dtype=np.float64)
    frequencies = np.arange(1, norms.size + 1)
    colours = np.where(np.isin(frequencies, key_frequencies), "tab:red", "tab:gray")
    figure = Figure(figsize=(8, 3.2))
    axis = figure.subplots()
    axis.bar(frequencies, norms, color=colours)
    axis.set_xlabel("frequency k (waves cos/sin 2πka/p)")
    axis.set_ylabel("‖W_E on frequency k‖")
    axis.set_title(f"Embedding Fourier spectrum, p = {p}; key frequencies {', '.join(map(str, key_frequencies))} (red)")
    return _save(figure, path)


# ----------------------------------------------------------------------------- markdown


def _fmt(value: Any, digits: int = 3) -> str:
    if value is None or (isinstance(value, float) and not np.isfinite(value)):
        return "—"
    return f"{value:.{digits}f}"


def _pm(mean: Any, sd: Any) -> str:
    return f"{_fmt(mean)} ± {_fmt(sd)}"


def _ci(point: Any, low: Any, high: Any) -> str:
    return f"{_fmt(point)} [{_fmt(low)}, {_fmt(high)}]"


def summary_table_lines(table: pd.DataFrame) -> list[str]:
    """The architecture × (EV, L0, dead, PWMCC, random PWMCC, Fourier overlap, random overlap) table."""
    header = ("| architecture | SAEs | EV | L0 | dead | PWMCC | random PWMCC (Gaussian / shuffled) | PWMCC gap vs Gaussian [95% CI] "
              "| Fourier overlap | random overlap (Gaussian / shuffled) | overlap gap vs Gaussian [95% CI] |")  # fmt: skip
    lines = [header, "|---|" + "---|" * 10]
    for row in table.to_dict(orient="records"):
        lines.append(
            f"| {row['architecture']} | {row['n_saes']} | {_pm(row['explained_variance_mean'], row['explained_variance_sd'])} "
            f"| {_pm(row['l0_mean'], row['l0_sd'])} | {_pm(row['dead_fraction_mean'], row['dead_fraction_sd'])} "
            f"| {_pm(row['pwmcc_mean'], row['pwmcc_sd'])} | {_fmt(row['pwmcc_gaussian'])} / {_fmt(row['pwmcc_shuffled'])} "
            f"| {_ci(row['pwmcc_gap_gaussian'], row['pwmcc_gap_gaussian_ci_low'], row['pwmcc_gap_gaussian_ci_high'])} "
            f"| {_pm(row['fourier_overlap_mean'], row['fourier_overlap_sd'])} "
            f"| {_fmt(row['fourier_overlap_gaussian'])} / {_fmt(row['fourier_overlap_shuffled'])} "
            f"| {_ci(row['fourier_gap_gaussian'], row['fourier_gap_gaussian_ci_low'], row['fourier_gap_gaussian_ci_high'])} |"
        )
    return lines


def per_sae_lines(saes: pd.DataFrame) -> list[str]:
    lines = ["| SAE | EV | L0 | dead | Fourier overlap | node |", "|---|---|---|---|---|---|"]
    for row in saes.to_dict(orient="records"):
        lines.append(f"| {row['architecture']} seed {row['seed']} | {_fmt(row['explained_variance'])} | {_fmt(row['l0'], 1)} "
                     f"| {_fmt(row['dead_fraction'])} | {_fmt(row['fourier_overlap'])} | `sae/{row['sae_node']}` |")  # fmt: skip
    return lines


def render_report(detail: Mapping[str, Any], table: pd.DataFrame, saes: pd.DataFrame, figures: Sequence[str]) -> str:
    """The markdown of ``results/modular/stability.md``."""
    model, training, fourier = detail["backbone"], detail["training"], detail["fourier"]
    expected = detail["closed_form"]
    lines = [
        "# Feature stability with ground truth: modular addition",
        "",
        f"A {model['n_layers']}-layer transformer (d_model {model['d_model']}, {model['n_heads']} heads, d_mlp "
        f"{model['d_mlp']}, no LayerNorm) trained full batch on (a + b) mod {model['p']} with "
        f"{model['train_fraction']:.0%} of the pairs (AdamW, lr {model['lr']}, weight decay {model['weight_decay']}): "
        f"train accuracy 100% at step {training['memorized_step']}, test accuracy {training['final']['test_accuracy']:.4f} "
        f"at step {training['steps']} (first {model['stop_at_test_accuracy']:.0%} at step {training['grokked_step']}).",
        f"SAEs ({detail['expansion']}× width, {len(detail['saes'])} in all) trained with sae-lens on "
        f"`blocks.{detail['layer']}.hook_resid_post` at the `=` position over all {model['p']}² inputs; quality is "
        "measured on the same inputs (the input space is finite and fully enumerated).",
        "",
        "## Stability and Fourier recovery",
        "",
    ]
    lines += summary_table_lines(table)
    lines += [
        "",
        "Mean ± sd over seeds (PWMCC: over seed pairs). EV = explained variance; L0 = mean active features per input; "
        "dead = share of features that never fire on any input. PWMCC = pairwise maximum cosine between decoder "
        "directions (signed, symmetrized; Paulo & Belrose 2025). Random controls have each SAE's shape: *Gaussian* "
        "rows uniform on the sphere, *shuffled* = each decoder row's coordinates permuted (norms and entry "
        f"distribution kept, direction lost); {detail['n_random']} draws each. Gaps are trained minus control with a "
        f"95% bootstrap CI ({detail['n_boot']} resamples of seeds). Closed-form PWMCC of two independent Gaussian "
        f"dictionaries of this shape: {_fmt(expected['pwmcc_gaussian'])}; closed-form Fourier overlap of one: "
        f"{_fmt(expected['fourier_overlap_gaussian'])}.",
        "",
        "## Fourier ground truth",
        "",
        f"Key frequencies (largest norm of the number-token embedding W_E on cos/sin 2πka/p): "
        f"{', '.join(map(str, fourier['key_frequencies']))}; they hold {fourier['key_share']:.1%} of W_E's "
        "non-constant Fourier energy.",
        f"Fourier directions in the residual space: **{fourier['primary']}** — {fourier['descriptions'][fourier['primary']]}",
        "The overlap of an SAE is the mean over these directions of the best |cos| with any decoder row.",
        "",
        "| directions | " + " | ".join(f"{a} overlap (Gaussian / shuffled)" for a in table["architecture"]) + " |",
        "|---|" + "---|" * len(table),
    ]
    for kind, by_architecture in fourier["overlap_by_directions"].items():
        cells = []
        for architecture in table["architecture"]:
            score = by_architecture[architecture]
            controls = score["controls"]
            cells.append(f"{_pm(score['mean'], score['sd'])} ({_fmt(controls['gaussian']['mean'])} / {_fmt(controls['shuffled']['mean'])})")
        lines.append(f"| {kind}{' (primary)' if kind == fourier['primary'] else ''} | {' | '.join(cells)} |")
    lines += ["", "## Per SAE", ""] + per_sae_lines(saes)
    lines += ["", "## Figures", ""] + [f"![{name}](figures/{name})" for name in figures]
    lines += ["", "## Sources", "",
              f"`modular_stability` node `{detail['node_id']}`; backbone `modular_backbone/{detail['backbone_node']}`, "
              f"activations `modular_activations/{detail['activations_node']}` (`<store>/<stage>/<node id>/`).", ""]  # fmt: skip
    return "\n".join(lines)


# ----------------------------------------------------------------------------- views


def synthesis_rows(stability_dir: str | os.PathLike) -> pd.DataFrame:
    """The synthesis' modular rows: one per architecture, numbers only, for ``synthesis.frame_markdown``.

    Columns: ``modality`` ("modular"), ``layer``, ``sae`` ("topk x8"), ``seeds``, means over
    seeds of ``explained_variance``, ``l0``, ``dead_fraction``, ``fourier_overlap``; ``pwmcc``
    (mean over seed pairs), the Gaussian controls ``pwmcc_random`` and
    ``fourier_overlap_random``, the gap ``pwmcc_gap`` with its 95% CI, the
    covariance-matched controls ``pwmcc_random_matched`` and
    ``fourier_overlap_random_matched``, and
    ``stability_node`` (a ``modular_stability`` node id: map it to that stage in the footnotes).
    """
    stability_dir = Path(stability_dir)
    detail = read_json(stability_dir / DETAIL)
    records = []
    for row in detail["table"]:
        records.append({
            "modality": "modular", "layer": detail["layer"], "sae": f"{row['architecture']} x{detail['expansion']}",
            "seeds": row["n_saes"], "explained_variance": row["explained_variance_mean"], "l0": row["l0_mean"],
            "dead_fraction": row["dead_fraction_mean"], "pwmcc": row["pwmcc_mean"], "pwmcc_random": row["pwmcc_gaussian"],
            "pwmcc_gap": row["pwmcc_gap_gaussian"], "pwmcc_gap_ci_low": row["pwmcc_gap_gaussian_ci_low"],
            "pwmcc_gap_ci_high": row["pwmcc_gap_gaussian_ci_high"], "fourier_overlap": row["fourier_overlap_mean"],
            "fourier_overlap_random": row["fourier_overlap_gaussian"],
            "pwmcc_random_matched": row.get("pwmcc_covariance"), "fourier_overlap_random_matched": row.get("fourier_overlap_covariance"),
            "stability_node": stability_dir.name,
        })  # fmt: skip
    return pd.DataFrame.from_records(records)
