"""Stage `synthesis`: the cross-modal table, SAE section, sweep, verdicts, figures and LaTeX."""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import pandas as pd

from sae_difficulty import __version__
from sae_difficulty.pipeline.runner import NodeContext
from sae_difficulty.reports.ground_truth_report import (
    synthesis_rows as ground_truth_rows,
)
from sae_difficulty.reports.modular_report import synthesis_rows
from sae_difficulty.reports.synthesis import (
    DISENTANGLE_NOTE,
    DISENTANGLE_SAES,
    FIGURES,
    Cell,
    Footnotes,
    Table,
    causal_cells,
    delta_verdict_of,
    disentangle_table,
    fmt,
    fmt_ci,
    fmt_p,
    fmt_signed,
    frame_markdown,
    load_result,
    long_frame,
    margin_of,
    markdown_table,
    probe_cells,
    sae_group,
    sae_scope,
    sae_table,
    selective_cells,
    summary_lines,
    verdicts,
)
from sae_difficulty.utils.io import dumps, write_parquet

COLUMN_FIGURES = {"probe": ["ladder.png"], "selective": ["risk_coverage.png", "reliability.png", "cascade.png"],
                  "causal": ["causal_effects.png"]}  # fmt: skip


def code_version(stage_versions: dict[str, str]) -> str:
    digest = hashlib.sha256(dumps(stage_versions).encode()).hexdigest()[:8]
    return f"sae-difficulty {__version__} (stage versions {digest})"


def _copy_figures(source: Path, names: list[str], target: Path, prefix: str) -> list[str]:
    copied = []
    for name in names:
        if (source / name).is_file():
            shutil.copyfile(source / name, target / f"{prefix}__{name}")
            copied.append(f"{prefix}__{name}")
    return copied


def _main_table(ctx: NodeContext, figures: Path) -> tuple[Table, dict, list[str]]:
    columns = ctx.params["columns"]
    table = Table("", [c["name"] for c in columns])
    data, figure_names = {}, []
    for column in columns:
        dirs = {stage: ctx.parent(role) for stage, role in column["roles"].items()}
        results = {stage: load_result(dirs[stage], stage) for stage in dirs}
        cells = {
            **probe_cells(results["probe"], dirs["probe"].name, margin_of(ctx.params["verdicts"])),
            **causal_cells(results["causal"], dirs["causal"].name),
            **selective_cells(results["selective"], dirs["selective"].name),
        }
        for label, cell in cells.items():
            table.put(label, column["name"], cell)
        data[column["name"]] = results
        for stage, names in COLUMN_FIGURES.items():
            figure_names += _copy_figures(dirs[stage], names, figures, f"{column['name']}__{stage}")
    return table, data, figure_names


def _sae_section(ctx: NodeContext, figures: Path) -> tuple[pd.DataFrame, list[str]]:
    quality, figure_names = {}, []
    for row in ctx.params["sae_rows"]:
        directory = ctx.parent(row["role"])
        quality[row["role"]] = (load_result(directory, "quality"), directory.name)
        prefix = f"sae_{sae_scope(row).replace('/', '_')}_L{row['layer']}_{row['architecture']}x{row['expansion']}_s{row['seed']}"
        figure_names += _copy_figures(directory, ["feature_frequency.png"], figures, prefix)
    stability = {}
    for row in ctx.params["stability_rows"]:
        directory = ctx.parent(row["role"])
        stability[sae_group(row)] = (load_result(directory, "stability"), directory.name)
    return sae_table(ctx.params["sae_rows"], quality, stability), figure_names


def _sweep_table(ctx: NodeContext) -> Table:
    margin = margin_of(ctx.params["verdicts"])
    table = Table("sweep", ["P2 AUROC", "P3 AUROC", "Δ(P3−P2) [95% CI]", "p (paired perm)", f"verdict (±{margin:g})"])
    headline_scope = ctx.params["primary"]["labels"]["scope"]
    for row in ctx.params["sweep_rows"]:
        directory = ctx.parent(row["role"])
        ladder = load_result(directory, "probe")["ladder"]
        aurocs = {r["rung"]: r["auroc"] for r in ladder["table"]}
        delta = ladder["deltas"]["P3-P2"]
        label = f"{row['column']} L{row['layer']} {row['architecture']} x{row['expansion']} {row['pooling']}"
        scope = row.get("label_scope", headline_scope)
        if scope != headline_scope:
            label += f" labels: {scope} scope"
        node = directory.name
        table.put(label, "P2 AUROC", Cell(fmt(aurocs["P2"]), "probe", node, aurocs["P2"]))
        table.put(label, "P3 AUROC", Cell(fmt(aurocs["P3"]), "probe", node, aurocs["P3"]))
        table.put(label, "Δ(P3−P2) [95% CI]", Cell(
            f"{fmt_signed(delta['delta'])} {fmt_ci(delta['ci_low'], delta['ci_high'], signed=True)}", "probe", node,
            delta["delta"], delta["ci_low"], delta["ci_high"], delta["p_paired_permutation"]))  # fmt: skip
        table.put(label, "p (paired perm)", Cell(fmt_p(delta["p_paired_permutation"]), "probe", node, p=delta["p_paired_permutation"]))
        table.put(label, f"verdict (±{margin:g})", Cell(delta_verdict_of(delta, margin), "probe", node, delta["delta"]))
    return table


def _disentangle_tables(ctx: NodeContext) -> list[Table]:
    """Per LM dataset with ``llm.causal.disentangle``: the 2x2 of SAE (boundary / all-position) x patch."""
    tables = []
    for row in ctx.params.get("disentangle_rows", []):
        causal = {}
        for sae, _ in DISENTANGLE_SAES:
            directory = ctx.parent(row[sae])
            causal[sae] = (load_result(directory, "causal"), directory.name)
        tables.append(disentangle_table(row["column"], causal))
    return tables


FILTER_NAMES = {"near_duplicate": "near-duplicate prompts (TF-IDF cosine ≥ {threshold:g})",
                "contamination": "memorised prompts (prompt-only perplexity ≤ {threshold:g})"}  # fmt: skip


def example_filter_lines(column_data: dict[str, dict]) -> list[str]:
    """One line per column: what the headline probe's example filters dropped (the LM's
    near-duplicate and contamination filters) and, for time-ordered holdout, the training
    windows purged next to the test part."""
    lines = []
    for name, results in column_data.items():
        probe = results["probe"]
        filters = probe.get("filters") or {}
        parts = []
        for key, spec in (filters.get("filters") or {}).items():
            by_split = ", ".join(f"{split} {count}" for split, count in spec["n_dropped_by_split"].items())
            parts.append(f"{FILTER_NAMES[key].format(threshold=spec['threshold'])}: {spec['n_dropped']} dropped ({by_split})")
        purged = (probe.get("dependence") or {}).get("n_purged_holdout")
        if purged:
            parts.append(f"training windows within the purge gap of the test part: {purged} dropped")
        if not parts:
            parts.append("no example filter configured")
        kept = f"; {filters['n_kept']} of {filters['n_examples']} examples kept" if filters.get("filters") else ""
        lines.append(f"- {name}: " + "; ".join(parts) + kept)
    return lines


def _expansion_text(expansion: int | dict[str, int]) -> str:
    """``4×``, or ``4× (llm), 8× (tsfm)`` when each modality has its own expansion."""
    if isinstance(expansion, dict):
        return ", ".join(f"{value}× ({modality})" for modality, value in expansion.items())
    return f"{expansion}×"


def _header(params: dict) -> list[str]:
    primary = params["primary"]
    layers = ", ".join(f"{m} layer {layer}" for m, layer in primary["layers"].items())
    return [
        "# Cross-modal synthesis: do SAE features encode self-difficulty?",
        "",
        f"Config `{params['name']}` · {code_version(params['stage_versions'])} · seed {params['seed']}.",
        f"Headline probes: {layers}; {primary['architecture']} SAE at {_expansion_text(primary['expansion'])} width (seed {primary['seed']}); "
        f"{primary['pooling']} pooling; probe mode `{primary['probe_mode']}`; difficulty = error above the "
        f"{primary['labels']['quantile']} quantile ({primary['labels']['scope']} scope: "
        + ("the threshold of each fold's training examples only" if primary["labels"]["scope"] == "train"
           else "the threshold of all examples, test included") + ") for continuous errors, incorrect for binary ones."
        + (f" Robustness rows repeat the headline probe with {primary['labels']['robustness_scope']}-scope labels."
           if primary["labels"].get("robustness_scope") else ""),
        "AUROCs with 95% bootstrap CIs; Δ with paired-bootstrap 95% CIs; p values two-sided. Time-ordered windows (TSFM): "
        "purged blocked folds, blocked inner CV, moving-block bootstrap and block permutations; the LM's examples are "
        "resampled one at a time. Each number's footnote names the store node it came from "
        "(`<store>/<stage>/<node id>/`, with `spec.json` and `manifest.json`).",
        f"Verdict on Δ(P3−P2), equivalence margin m = {margin_of(params['verdicts']):g} AUROC: SAE adds signal (95% CI "
        "above 0), SAE worse (95% CI below 0), equivalent within ±m (90% CI inside ±m), otherwise inconclusive. "
        "Causal k/n = ablated top features significant after correction, beside the median and 95th percentile of k "
        "over random feature sets matched on firing frequency (deciles), with the empirical p.",
        (
            "Cascade: the expensive member minus the cheap one, mean error on the same scored examples (negative = the "
            "expensive member is better, so routing can pay), with a paired-bootstrap 95% CI resampled as the probe was; "
            "accuracy beside chance for multiple choice (HellaSwag: 1/4; SQuAD's exact match has no chance level)."
        ),
        "",
    ]


def build(ctx: NodeContext) -> None:
    params = ctx.params
    figures = ctx.out / FIGURES
    figures.mkdir()
    main, column_data, figure_names = _main_table(ctx, figures)
    sae_frame, sae_figures = _sae_section(ctx, figures)
    sweep = _sweep_table(ctx) if params["sweep_rows"] else None
    disentangle = _disentangle_tables(ctx)
    column_modalities = {c["name"]: c["modality"] for c in params["columns"]}
    verdict = verdicts(column_data, params["verdicts"])

    notes = Footnotes()
    lines = _header(params) + ["## Summary", ""]
    lines += [f"- {line}" for line in summary_lines(column_modalities, verdict, params["verdicts"])]
    lines += ["", "## Self-difficulty signal (Q1 probes, Q2 causal, Q3 selective, Q4 cascade)", ""]
    lines += markdown_table(main, notes)
    lines += ["", "### Examples dropped before the probes", ""] + example_filter_lines(column_data)
    if disentangle:
        lines += ["", "## Causal disentanglement (which SAE × which positions are patched)", "", DISENTANGLE_NOTE]
        for table in disentangle:
            lines += [""] + markdown_table(table, notes)
    lines += ["", "## SAEs: quality and stability", "",
              "EV = explained variance on held-out activations; L0 = mean active features per token; dead = share of "
              "features that never fired on the held-out budget; spliced Δ = loss increase with the reconstruction "
              "spliced in (nats for the LM, CRPS for Chronos); recovered = share of the zero-ablation loss gap the "
              "reconstruction recovers; PWMCC across seeds vs random dictionaries of the same shape: isotropic, and "
              "matched (rows drawn from the covariance of the SAE's own held-out activations); stable = every seed "
              "pair's PWMCC above every matched random draw (the stability verdict uses the matched baseline); disjoint halves = "
              "PWMCC of the primary recipe trained on two disjoint halves of the cache.", ""]  # fmt: skip
    lines += frame_markdown(sae_frame, notes, {"quality_node": "sae_quality", "stability_node": "sae_stability"})
    if params.get("modular_role"):
        lines += ["", "### Modular arithmetic (ground truth): stability across seeds and Fourier recovery", ""]
        lines += frame_markdown(synthesis_rows(ctx.parent(params["modular_role"])), notes, {"stability_node": "modular_stability"})
    if params.get("ground_truth_role"):
        lines += ["", "### Synthetic ground truth: stability across seeds vs recovery of the true features", ""]
        lines += frame_markdown(ground_truth_rows(ctx.parent(params["ground_truth_role"])), notes, {"ground_truth_node": "ground_truth"})
    if sweep is not None:
        lines += ["", "## Robustness sweep (other layers, SAE widths and poolings)", ""]
        lines += markdown_table(sweep, notes)
    lines += ["", "## Figures", ""]
    lines += [f"- [{name}](figures/{name})" for name in figure_names + sae_figures]
    lines += ["", "## Sources", ""] + notes.lines() + [""]
    markdown = "\n".join(lines)

    frames = [long_frame(main, "main")] + ([long_frame(sweep, "sweep")] if sweep is not None else [])
    frames += [long_frame(table, f"causal_disentanglement {table.title}") for table in disentangle]
    (ctx.out / "cross_modal_synthesis.md").write_text(markdown)
    write_parquet(ctx.out / "cross_modal_synthesis.parquet", pd.concat(frames, ignore_index=True))
    detail = {"config": params["name"], "code_version": code_version(params["stage_versions"]), "seed": params["seed"],
              "primary": params["primary"], "verdicts": verdict, "main": long_frame(main, "main"),
              "sae": sae_frame, "sweep": long_frame(sweep, "sweep") if sweep is not None else []}  # fmt: skip
    if disentangle:  # only then: a synthesis without the 2x2 writes what it always wrote
        detail["causal_disentanglement"] = {table.title: long_frame(table, "causal_disentanglement") for table in disentangle}
    (ctx.out / "cross_modal_synthesis.json").write_text(dumps(detail))
