"""The manuscript's results: the money table, the SAE tables, the evaluation suite and the figures.

Every cell is the synthesis JSON's own text or value (never recomputed); every table's
note names the store node of each of its numbers; figure captions are written from the
nodes the panels came from and the settings those nodes were built with.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sae_difficulty.reports.latex import (
    Sources,
    breakable,
    escape,
    frame_cell,
    interval,
    number,
    table,
    texttt,
)
from sae_difficulty.reports.manuscript_data import Headline, columns

# (kind, stage, file the synthesis node copied per column)
FIGURE_KINDS = (
    ("ladder", "probe", "ladder.png"),
    ("risk_coverage", "selective", "risk_coverage.png"),
    ("reliability", "selective", "reliability.png"),
    ("cascade", "selective", "cascade.png"),
    ("causal_effects", "causal", "causal_effects.png"),
)
SAE_COLUMNS = {
    "modality": "modality", "layer": "layer", "sae": "SAE", "seed": "seed", "explained_variance": "EV", "l0": "L0",
    "dead_fraction": "dead", "spliced_delta": "spliced Δ", "loss_unit": "unit", "fraction_recovered": "recovered",
    "pwmcc": "PWMCC", "pwmcc_random_isotropic": "random (iso.)", "pwmcc_random_matched": "random (matched)",
    "stable_beyond_matched": "stable",
}  # fmt: skip
MODULAR_COLUMNS = {
    "sae": "SAE", "seeds": "seeds", "explained_variance": "EV", "l0": "L0", "pwmcc": "PWMCC",
    "pwmcc_random": "random", "pwmcc_random_matched": "random (matched)", "fourier_overlap": "Fourier overlap",
    "fourier_overlap_random": "random",
}  # fmt: skip


@dataclass(frozen=True)
class Panel:
    """One figure panel: the data set it shows, its file (relative to ``paper/``) and its node."""

    column: str
    path: str
    node_id: str


@dataclass(frozen=True)
class EvalHeadline:
    """One evaluation node's headline (``headline.json``) and the ledger's status of it."""

    stage: str
    title: str
    node_id: str
    metric: str
    value: Any
    ci_low: float | None
    ci_high: float | None
    null: Any
    status: str


def headline_paragraph(headline: Headline, sources: Sources) -> str:
    h = headline
    pct = h.pct_oracle
    k = "n/a" if h.k.value is None else f"{number(h.k.value)}/{number(h.n_features)}"
    causal = "a causal effect" if h.causal_effect else "no causal effect"
    deploy = "deployable" if h.deployable else "not deployable"
    return (
        rf"\textbf{{{escape(h.column)}}}: P3 AUROC {number(h.p3.value)} {interval(h.p3.ci_low, h.p3.ci_high)}"
        rf"{sources.mark(h.p3.stage, h.p3.node_id)} against P2 {number(h.p2.value)} {interval(h.p2.ci_low, h.p2.ci_high)}"
        rf"{sources.mark(h.p2.stage, h.p2.node_id)}; $\Delta$(P3$-$P2) $= {number(h.delta.value, signed=True)}$, 95\% CI "
        rf"{interval(h.delta.ci_low, h.delta.ci_high, signed=True)}{sources.mark(h.delta.stage, h.delta.node_id)}: "
        rf"\emph{{{escape(h.verdict)}}}. Causal test: $k$ = {k}{sources.mark(h.k.stage, h.k.node_id)}, {causal}. "
        rf"Selective prediction: {number(pct.value, 1)}\% of the oracle's gain{sources.mark(pct.stage, pct.node_id)}, {deploy}."
    )  # fmt: skip


def main_table(synthesis: dict[str, Any], margin: float, random_sets: int = 0) -> str:
    """The money table: the synthesis' ``main`` cells, rows in order, one column per data set."""
    names = columns(synthesis)
    rows: dict[str, dict[str, dict[str, Any]]] = {}
    for record in synthesis["main"]:
        rows.setdefault(record["row"], {})[record["column"]] = record
    body = [[escape(row)] + [escape(cells[c]["text"]) if c in cells else "--" for c in names] for row, cells in rows.items()]
    nodes = [(r["stage"], r["node_id"]) for r in synthesis["main"]]
    width = f"{0.62 / max(len(names), 1):.3f}\\linewidth"
    note = (f"AUROCs with 95\\% bootstrap CIs; $\\Delta$ with paired-bootstrap 95\\% CIs; verdict margin $m = {number(margin, 3)}$. "
            "Causal k/n: ablated top features significant after correction"
            + (", beside the median and 95th percentile of k over frequency-matched random feature sets." if random_sets else "."))  # fmt: skip
    return table(["", *names], body, "Self-difficulty signal per data set (Q1 probes, Q2 causal, Q3 selective, Q4 cascade).",
                 "tab:main", nodes, note, widths=["0.3\\linewidth"] + [width] * len(names))  # fmt: skip


def records_table(records: Sequence[dict[str, Any]], shown: dict[str, str], node_columns: dict[str, str],
                  caption: str, label: str, note: str = "") -> str:  # fmt: skip
    """A table of ``records`` (the synthesis' ``sae`` or the modular rows): ``shown`` maps key → header;
    ``node_columns`` maps a node-id key to its stage (named in the note)."""
    keys = [k for k in shown if any(k in r for r in records)]
    body = [[frame_cell(r.get(k)) for k in keys] for r in records]
    nodes = [(stage, r[key]) for r in records for key, stage in node_columns.items() if r.get(key)]
    return table([shown[k] for k in keys], body, caption, label, nodes, note)


def sae_table(synthesis: dict[str, Any]) -> str:
    note = ("EV = explained variance on held-out activations; L0 = mean active features per token; dead = share of features "
            "that never fired; spliced $\\Delta$ = loss increase with the reconstruction spliced in; recovered = share of the "
            "zero-ablation loss gap recovered; PWMCC across seeds beside random dictionaries (isotropic; matched to the "
            "activations' covariance); stable = every seed pair above every matched random draw.")  # fmt: skip
    return records_table(synthesis["sae"], SAE_COLUMNS, {"quality_node": "sae_quality", "stability_node": "sae_stability"},
                         "SAE quality and stability across seeds.", "tab:sae", note)  # fmt: skip


def modular_table(records: Sequence[dict[str, Any]]) -> str:
    note = ("Ground truth: a modular-addition transformer whose learned algorithm is known (Fourier features); SAEs over "
            "seeds, their PWMCC and Fourier overlap beside random controls.")  # fmt: skip
    return records_table(records, MODULAR_COLUMNS, {"stability_node": "modular_stability"},
                         "Ground truth: SAE stability and Fourier recovery on modular arithmetic.", "tab:modular", note)  # fmt: skip


def sweep_table(synthesis: dict[str, Any]) -> str:
    sweep = synthesis.get("sweep") or []
    names = list(dict.fromkeys(r["column"] for r in sweep))
    rows: dict[str, dict[str, str]] = {}
    for r in sweep:
        rows.setdefault(r["row"], {})[r["column"]] = escape(r["text"])
    body = [[escape(row)] + [cells.get(c, "--") for c in names] for row, cells in rows.items()]
    return table(["setting", *names], body, "Robustness sweep: other layers, SAE widths, poolings and label scopes.",
                 "tab:sweep", [(r["stage"], r["node_id"]) for r in sweep],
                 widths=["0.34\\linewidth"] + ["0.11\\linewidth"] * len(names))  # fmt: skip


def evals_table(evals: Sequence[EvalHeadline]) -> str:
    body = [[escape(e.title), breakable(e.metric),
             (number(e.value) if isinstance(e.value, float) else escape(e.value)) + " " + interval(e.ci_low, e.ci_high),
             frame_cell(e.null), escape(e.status)] for e in evals]  # fmt: skip
    return table(["evaluation", "headline metric", "value [95% CI]", "null", "status"], body,
                 "SAE evaluation suite (and ground truth, when run): each headline against its null.", "tab:evals",
                 [(e.stage, e.node_id) for e in evals],
                 widths=["0.28\\linewidth", "0.24\\linewidth", "0.18\\linewidth", "0.08\\linewidth", "0.12\\linewidth"])  # fmt: skip


def figure_caption(kind: str, facts: dict[str, Any]) -> str:
    cal, cas, causal = facts["calibration"], facts["cascade"], facts["causal"]
    captions = {
        "ladder": "Probe ladder: AUROC of P1 cheap, P2 cheap+raw, P3 cheap+SAE, P4 raw only and P5 SAE only, with 95% "
                  "bootstrap CIs; chance at 0.5.",
        "risk_coverage": "Risk-coverage curves of the probes' scores (keep the lowest-risk fraction), with the oracle "
                         "and random orderings.",
        "reliability": f"Reliability of the headline probe before and after out-of-fold Platt and isotonic recalibration "
                       f"({cal['n_bins']} equal-width bins, {cal['folds']} folds).",
        "cascade": f"Cheap-to-expensive cascade: mean cost per example against error as the routing threshold varies "
                   f"(costs {cas['cost_cheap']:g} and {cas['cost_expensive']:g} per call, budget {cas['budget']:g}), with "
                   "its Pareto frontier and oracle routing.",
        "causal_effects": f"Causal test: mean effect on the answer's loss of ablating each of the top {causal['n_features']} "
                          "features (95% CIs), at all positions and at the boundary position.",
    }  # fmt: skip
    return escape(captions[kind])


def figure(kind: str, panels: Sequence[Panel], facts: dict[str, Any]) -> str:
    width = f"{0.98 / max(len(panels), 1):.3f}\\linewidth"
    lines = [r"\begin{figure}[tbp]", r"\centering"]
    for panel in panels:
        lines += [rf"\begin{{subfigure}}[t]{{{width}}}", r"\centering",
                  rf"\includegraphics[width=\linewidth]{{{panel.path}}}", rf"\caption{{{escape(panel.column)}}}",
                  r"\end{subfigure}\hfill"]  # fmt: skip
    stage = next(s for k, s, _ in FIGURE_KINDS if k == kind)
    nodes = "; ".join(f"{escape(p.column)}: {escape(stage)} {texttt(p.node_id)}" for p in panels)
    lines += [rf"\caption{{{figure_caption(kind, facts)} Store nodes: {nodes}.}}", rf"\label{{fig:{kind}}}", r"\end{figure}", ""]
    return "\n".join(lines)


def results_section(headlines: Sequence[Headline], synthesis: dict[str, Any], facts: dict[str, Any], margin: float,
                    figures: dict[str, list[Panel]], evals: Sequence[EvalHeadline], modular: Sequence[dict[str, Any]],
                    sources: Sources) -> tuple[str, dict[str, str]]:  # fmt: skip
    """The results text (``results.tex``) and the tables it inputs (file name → TeX)."""
    tables = {"main_table.tex": main_table(synthesis, margin, facts["causal"].get("n_random_sets") or 0), "sae_table.tex": sae_table(synthesis)}
    parts = [r"\subsection{Self-difficulty signal}",
             "Table~\\ref{tab:main} holds every headline number; per data set:",
             "\\begin{itemize}\n" + "\n".join(rf"\item {headline_paragraph(h, sources)}" for h in headlines) + "\n\\end{itemize}",
             r"\input{generated/main_table.tex}"]  # fmt: skip
    shown = [kind for kind, _, _ in FIGURE_KINDS if figures.get(kind)]
    if shown:
        refs = ", ".join(rf"Figure~\ref{{fig:{kind}}}" for kind in shown)
        parts.append(f"Figures: {refs}.")
        parts += [figure(kind, figures[kind], facts) for kind in shown]
    parts += [r"\subsection{The SAEs: quality and stability}",
              "Table~\\ref{tab:sae} gives each SAE's reconstruction quality and the stability of its dictionary across seeds.",
              r"\input{generated/sae_table.tex}"]  # fmt: skip
    if modular:
        tables["modular_table.tex"] = modular_table(modular)
        parts += ["On a model whose algorithm is known, Table~\\ref{tab:modular} checks whether SAEs recover it stably.",
                  r"\input{generated/modular_table.tex}"]  # fmt: skip
    if synthesis.get("sweep"):
        tables["sweep_table.tex"] = sweep_table(synthesis)
        parts += [r"\subsection{Robustness}", "Table~\\ref{tab:sweep} repeats the probe ladder at the other settings.",
                  r"\input{generated/sweep_table.tex}"]  # fmt: skip
    if evals:
        tables["evals_table.tex"] = evals_table(evals)
        parts += [r"\subsection{SAE evaluation suite}",
                  ("Table~\\ref{tab:evals} lists each evaluation's headline with the run ledger's status (the null it is "
                   "tested against, and whether a published claim is reproduced)."),
                  r"\input{generated/evals_table.tex}"]  # fmt: skip
    return "\n\n".join(parts) + "\n", tables
