"""The cross-modal synthesis: one table from every stage's results, with verdicts.

Each cell remembers the store node it came from; the markdown puts the node id in a
footnote, the parquet/JSON keep it in a column. The verdicts in the summary are
derived from the numbers by the rules in :func:`verdicts` (no hand-written
conclusions), so they change when the numbers do.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from sae_difficulty.core.verdicts import DEFAULT_MARGIN, delta_verdict, verdict_words
from sae_difficulty.utils.errors import InputError
from sae_difficulty.utils.io import read_json

RUNG_LABELS = {
    "P1": "P1 cheap AUROC",
    "P2": "P2 cheap+raw AUROC",
    "P3": "P3 cheap+SAE AUROC",
    "P4": "P4 raw-only AUROC",
    "P5": "P5 SAE-only AUROC",
}
LOSS_UNITS = {"llm": "nats", "tsfm": "CRPS"}


#: Files of the synthesis node copied to results/, and its figures folder.
PUBLISHED = ("cross_modal_synthesis.md", "cross_modal_synthesis.parquet", "cross_modal_synthesis.json")
FIGURES = "figures"


@dataclass
class Cell:
    """One number of the table, its uncertainty and the node it came from."""

    text: str
    stage: str
    node_id: str
    value: float | None = None
    ci_low: float | None = None
    ci_high: float | None = None
    p: float | None = None


@dataclass
class Table:
    """Rows x columns of cells (a row may miss a column)."""

    title: str
    columns: list[str]
    rows: dict[str, dict[str, Cell]] = field(default_factory=dict)

    def put(self, row: str, column: str, cell: Cell) -> None:
        self.rows.setdefault(row, {})[column] = cell


def fmt(value: float | None, digits: int = 3) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "n/a"
    return f"{value:.{digits}f}"


def fmt_signed(value: float | None, digits: int = 3) -> str:
    if value is None or not math.isfinite(value):
        return "n/a"
    return f"{value:+.{digits}f}"


def fmt_p(p: float | None) -> str:
    if p is None or not math.isfinite(p):
        return "n/a"
    return f"{p:.3f}" if p >= 0.001 else f"{p:.1e}"


def fmt_ci(low: float | None, high: float | None, signed: bool = False) -> str:
    f = fmt_signed if signed else fmt
    return f"[{f(low)}, {f(high)}]"


def load_result(directory: Path, name: str) -> dict[str, Any]:
    """Read ``<directory>/<name>.json``; a missing or broken file names the upstream node."""
    path = Path(directory) / f"{name}.json"
    if not path.is_file():
        raise InputError(f"missing upstream result {path}; expected the {Path(directory).parent.name} node to have written it")
    try:
        return read_json(path)
    except ValueError:
        raise InputError(f"{path}: not valid JSON; the upstream node is corrupt (run `sae-difficulty store verify`)") from None


# ----------------------------------------------------------------------------- per-column rows
def margin_of(rules: dict[str, Any]) -> float:
    """The equivalence margin of the verdicts (``synthesis.equivalence_margin``)."""
    return float(rules.get("equivalence_margin", DEFAULT_MARGIN))


def delta_verdict_of(delta: dict[str, Any], margin: float) -> str:
    """The four-word verdict of one Δ entry (95 % and 90 % CIs; a result without the 90 % CI is read as unknown)."""
    ci90 = (delta.get("ci90_low", float("nan")), delta.get("ci90_high", float("nan")))
    return delta_verdict((delta["ci_low"], delta["ci_high"]), ci90, margin)


def verdict_row(margin: float) -> str:
    return f"verdict on Δ(P3−P2) (margin ±{margin:g} AUROC)"


def probe_cells(probe: dict[str, Any], node_id: str, margin: float = DEFAULT_MARGIN) -> dict[str, Cell]:
    ladder = probe["ladder"]
    cells = {}
    for row in ladder["table"]:
        cells[RUNG_LABELS[row["rung"]]] = Cell(
            f"{fmt(row['auroc'])} {fmt_ci(row['auroc_ci_low'], row['auroc_ci_high'])}", "probe", node_id,
            row["auroc"], row["auroc_ci_low"], row["auroc_ci_high"],
        )  # fmt: skip
    for name, label in (("P3-P2", "Δ SAE over raw (P3−P2)"), ("P3-P1", "Δ SAE over cheap (P3−P1)")):
        d = ladder["deltas"][name]
        cells[label] = Cell(
            f"{fmt_signed(d['delta'])} {fmt_ci(d['ci_low'], d['ci_high'], signed=True)}", "probe", node_id,
            d["delta"], d["ci_low"], d["ci_high"], d["p_paired_permutation"],
        )  # fmt: skip
    d = ladder["deltas"]["P3-P2"]
    cells[verdict_row(margin)] = Cell(delta_verdict_of(d, margin), "probe", node_id, d["delta"], d["ci_low"], d["ci_high"])
    cells["p of P3−P2: paired perm / label perm / DeLong"] = Cell(
        f"{fmt_p(d['p_paired_permutation'])} / {fmt_p(d['p_label_permutation'])} / {fmt_p(d['p_delong'])}",
        "probe", node_id, p=d["p_paired_permutation"],
    )  # fmt: skip
    cells["examples (difficult)"] = Cell(f"{probe['n_examples']} ({probe['n_difficult']})", "probe", node_id, probe["n_examples"])
    return cells


def control_text(entry: dict[str, Any]) -> str:
    """``k/n (random sets: median, 95th pct)`` plus the empirical p when there is a control."""
    text = f"{entry['n_significant']}/{entry['n_features']}"
    control = entry.get("control")
    if control:
        text += (f" (random sets: {fmt(control['median'], 1)}, {fmt(control['p95'], 1)}; "
                 f"p {fmt_p(control['p_empirical'])}, {control['n_sets']} sets)")  # fmt: skip
    return text


def causal_cells(causal: dict[str, Any], node_id: str) -> dict[str, Cell]:
    cells = {}
    for positions, label in (("all", "causal: all prompt/context positions, k/n (random sets: median, 95th pct)"),
                             ("last", "causal: boundary position only, k/n (random sets: median, 95th pct)")):  # fmt: skip
        entry = causal["by_positions"][positions]
        p = (entry.get("control") or {}).get("p_empirical")
        cells[label] = Cell(control_text(entry), "causal", node_id, entry["n_significant"], p=p)
    return cells


#: The 2x2 causal disentanglement (``llm.causal.disentangle``): rows = the SAE patched in (its
#: synthesis-param role), columns = the positions patched (``by_positions`` of causal.json).
DISENTANGLE_SAES = (("boundary_sae", "boundary SAE (fitted to the last prompt token)"),
                    ("allpos_sae", "all-position SAE (fitted to every prompt position)"))  # fmt: skip
DISENTANGLE_PATCHES = (("last", "boundary patch (last prompt token)"), ("all", "all-position patch (every prompt position)"))
DISENTANGLE_NOTE = (
    "Each cell: k/n = of the n features with the largest |weight| in that SAE's own headline probe, how many change the "
    "answer's loss significantly (corrected) when ablated in the SAE reconstruction patched in at the boundary position only or at "
    "every prompt position, beside the same count for that SAE's frequency-matched random feature sets (median, 95th "
    "percentile, empirical p). The boundary SAE's all-position cell patches positions that SAE was never fitted to; the "
    "all-position SAE's row is the same test with an SAE fitted to them. k = 0 is no evidence of an effect, not "
    "evidence of no effect."
)


def disentangle_table(column: str, causal: dict[str, tuple[dict[str, Any], str]]) -> Table:
    """The 2x2 table of one dataset: ``causal`` maps ``boundary_sae`` / ``allpos_sae`` to
    (that causal node's causal.json, its node id); cells as the main table's causal rows."""
    table = Table(column, [label for _, label in DISENTANGLE_PATCHES])
    for sae, sae_label in DISENTANGLE_SAES:
        result, node_id = causal[sae]
        for positions, patch_label in DISENTANGLE_PATCHES:
            entry = result["by_positions"][positions]
            p = (entry.get("control") or {}).get("p_empirical")
            table.put(sae_label, patch_label, Cell(control_text(entry), "causal", node_id, entry["n_significant"], p=p))
    return table


def causal_beyond_control(entry: dict[str, Any]) -> bool:
    """A causal effect: at least one feature significant and k above the random sets' 95th percentile
    (without a control, k >= 1 as in the original study)."""
    control = entry.get("control")
    k = entry["n_significant"]
    return bool(k >= 1 and (control is None or k > control["p95"]))


def selective_cells(selective: dict[str, Any], node_id: str) -> dict[str, Cell]:
    rc = selective["risk_coverage"]
    headline, best = selective["headline_rung"], selective["best_rung"]
    cells = {
        f"selective: % of oracle captured ({headline})": Cell(fmt(rc[headline]["pct_oracle_captured"], 1), "selective", node_id, rc[headline]["pct_oracle_captured"]),
        "selective: best rung (% of oracle)": Cell(f"{best} ({fmt(rc[best]['pct_oracle_captured'], 1)})", "selective", node_id, rc[best]["pct_oracle_captured"]),
    }  # fmt: skip
    metrics = selective["calibration"]["metrics"]
    for metric in ("ece", "brier"):
        before, platt, isotonic = (metrics[v][metric] for v in ("before", "platt", "isotonic"))
        cells[f"{metric.upper() if metric == 'ece' else 'Brier'} ({headline}): before → Platt / isotonic"] = Cell(
            f"{fmt(before)} → {fmt(platt)} / {fmt(isotonic)}", "selective", node_id, before,
        )  # fmt: skip
    cascade = selective["cascade"]
    best_point = cascade["best_under_budget"][0]
    cells["cascade: best point under budget (cost, error)"] = Cell(
        f"{fmt(best_point['cost'], 2)}, {fmt(best_point['error'])} (cheap {fmt(cascade['always_cheap']['error'])}, "
        f"expensive {fmt(cascade['always_expensive']['error'])})",
        "selective", node_id, best_point["error"],
    )  # fmt: skip
    cells.update(member_cells(cascade.get("members"), node_id))
    return cells


def member_cells(members: dict[str, Any] | None, node_id: str) -> dict[str, Cell]:
    """Beside the cascade row: is the expensive member better than the cheap one on the same
    examples (paired bootstrap CI of the error difference and its relative size), and the
    LM's accuracy beside chance (multiple choice only; free generation has no chance level)."""
    if not members:
        return {}
    resampling = "i.i.d." if members["block_length"] is None else f"blocks of {members['block_length']}"
    cells = {
        "cascade: expensive − cheap mean error [95% CI] (relative)": Cell(
            f"{fmt_signed(members['delta'])} {fmt_ci(members['delta_ci_low'], members['delta_ci_high'], signed=True)} "
            f"({fmt_signed(100 * members['relative'], 1)} % [{fmt_signed(100 * members['relative_ci_low'], 1)}, "
            f"{fmt_signed(100 * members['relative_ci_high'], 1)}]; paired bootstrap, {resampling})",
            "selective", node_id, members["delta"], members["delta_ci_low"], members["delta_ci_high"],
        ),
    }  # fmt: skip
    accuracy = members.get("accuracy")
    if accuracy:
        chance = "no chance level" if accuracy["chance"] is None else f"chance {fmt(accuracy['chance'], 2)}"
        cells["accuracy: cheap / expensive (chance)"] = Cell(
            f"{fmt(accuracy['cheap'])} / {fmt(accuracy['expensive'])} ({chance})", "selective", node_id, accuracy["expensive"]
        )
    return cells


# ----------------------------------------------------------------------------- verdicts
def verdicts(column_data: dict[str, dict[str, Any]], rules: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Per column: the verdict on Δ(P3−P2), is there a causal effect, is the selective predictor deployable?

    - ``delta_verdict``: one of SAE adds signal / SAE worse / equivalent within ±m /
      inconclusive (:func:`~sae_difficulty.core.verdicts.delta_verdict`, m =
      ``rules["equivalence_margin"]``);
    - causal effect: at least one ablated top feature significant (corrected) at all
      prompt/context positions and k above the 95th percentile of the frequency-matched
      random sets (:func:`causal_beyond_control`);
    - deployable: P3's AUROC CI excludes 0.5 and P3 captures at least
      ``deployable_min_pct_oracle`` percent of the oracle's AURC gain.
    """
    out = {}
    margin = margin_of(rules)
    for name, data in column_data.items():
        delta = data["probe"]["ladder"]["deltas"]["P3-P2"]
        p3 = next(row for row in data["probe"]["ladder"]["table"] if row["rung"] == "P3")
        pct = data["selective"]["risk_coverage"][data["selective"]["headline_rung"]]["pct_oracle_captured"]
        pct = pct if pct is not None else float("nan")
        causal_all = data["causal"]["by_positions"]["all"]
        k_all = causal_all["n_significant"]
        control = causal_all.get("control") or {}
        out[name] = {
            "delta_verdict": delta_verdict_of(delta, margin), "equivalence_margin": margin,
            "ci90": [delta.get("ci90_low"), delta.get("ci90_high")],
            "causal_effect": causal_beyond_control(causal_all),
            "k_random_median": control.get("median"), "k_random_p95": control.get("p95"),
            "p_causal_control": control.get("p_empirical"),
            "deployable_selective": bool(p3["auroc_ci_low"] > 0.5 and math.isfinite(pct) and pct >= rules["deployable_min_pct_oracle"]),
            "delta": delta["delta"], "ci": [delta["ci_low"], delta["ci_high"]], "k_all": k_all,
            "n_features": data["causal"]["by_positions"]["all"]["n_features"], "pct_oracle": pct,
            "p3_auroc": p3["auroc"], "p3_ci_low": p3["auroc_ci_low"],
        }  # fmt: skip
    return out


def summary_lines(column_modalities: dict[str, str], verdict: dict[str, dict[str, Any]], rules: dict[str, Any]) -> list[str]:
    lines = []
    margin = margin_of(rules)
    words = verdict_words(margin)
    for modality in sorted(set(column_modalities.values())):
        names = [n for n, m in column_modalities.items() if m == modality]
        parts = []
        for name in names:
            v = verdict[name]
            q1 = (f"{v['delta_verdict']} (Δ(P3−P2) {fmt_signed(v['delta'])}, 95% CI {fmt_ci(*v['ci'], signed=True)}, "
                  f"90% CI {fmt_ci(*v['ci90'], signed=True)})")  # fmt: skip
            control = ("" if v["k_random_median"] is None else
                       f"; random sets: median {fmt(v['k_random_median'], 1)}, 95th pct {fmt(v['k_random_p95'], 1)}, "
                       f"p {fmt_p(v['p_causal_control'])}")  # fmt: skip
            q2 = (f"a causal effect ({v['k_all']}/{v['n_features']} ablated features significant at all prompt/context positions{control})"
                  if v["causal_effect"] else
                  f"no causal effect beyond random feature sets ({v['k_all']}/{v['n_features']} significant{control})")  # fmt: skip
            q3 = (f"a deployable selective predictor (P3 AUROC {fmt(v['p3_auroc'])}, {fmt(v['pct_oracle'], 1)}% of oracle)"
                  if v["deployable_selective"]
                  else f"no deployable selective predictor (P3 AUROC {fmt(v['p3_auroc'])}, CI low {fmt(v['p3_ci_low'])}, "
                       f"{fmt(v['pct_oracle'], 1)}% of oracle < {fmt(rules['deployable_min_pct_oracle'], 0)}% or CI includes 0.5)")  # fmt: skip
            parts.append(f"{name}: {q1}; {q2}; {q3}.")
        held = {key: sum(verdict[n][key] for n in names) for key in ("causal_effect", "deployable_selective")}
        counts = ", ".join(f"{word} in {sum(verdict[n]['delta_verdict'] == word for n in names)}/{len(names)}" for word in words)
        lines.append(
            f"**{modality}** — Δ(P3−P2) verdicts (margin ±{margin:g} AUROC): {counts}; causal effect in "
            f"{held['causal_effect']}/{len(names)}, deployable selective predictor in {held['deployable_selective']}/{len(names)} "
            f"dataset(s). " + " ".join(parts)
        )
    return lines


# ----------------------------------------------------------------------------- SAE section
def spliced_delta(spliced: dict[str, Any]) -> float | None:
    for key in ("delta_nats", "delta_crps", "delta"):
        if key in spliced:
            return spliced[key]
    return None


def sae_group(row: dict[str, Any]) -> tuple:
    """The stability group of an SAE row: its cache (modality, dataset of a task-split SAE, layer) and recipe."""
    return (row["modality"], row.get("dataset"), row["layer"], row["architecture"], row["expansion"])


def sae_scope(row: dict[str, Any]) -> str:
    """``llm``, or ``llm/hellaswag`` for an SAE trained on one dataset's training split."""
    return f"{row['modality']}/{row['dataset']}" if row.get("dataset") else row["modality"]


def sae_table(rows: list[dict[str, Any]], quality: dict[str, tuple[dict[str, Any], str]],
              stability: dict[tuple, tuple[dict[str, Any], str]]) -> pd.DataFrame:  # fmt: skip
    """One row per SAE: quality numbers and the stability of its (architecture, width) group."""
    records = []
    for row in rows:
        q, node_id = quality[row["role"]]
        stab, stab_id = stability.get(sae_group(row), (None, None))
        records.append({
            "modality": sae_scope(row), "layer": row["layer"],
            # a published SAE (sae.pretrained) is named as sae-lens names it
            "sae": f"{row['release']}/{row['sae_id']}" if row.get("release") else f"{row['architecture']} x{row['expansion']}",
            "seed": row["seed"], "explained_variance": q["explained_variance"], "l0": q["mean_l0"],
            "dead_fraction": q["dead_fraction"], "spliced_delta": spliced_delta(q["spliced"]),
            "fraction_recovered": q["spliced"].get("fraction_recovered"), "loss_unit": LOSS_UNITS.get(row["modality"], ""),
            "pwmcc": stab["pwmcc_mean"] if stab else None, "pwmcc_random_isotropic": stab["random_mean"] if stab else None,
            "pwmcc_random_matched": stab.get("matched_mean") if stab else None,
            "pwmcc_disjoint_halves": stab.get("halves_pwmcc") if stab else None,
            "stable_beyond_matched": ("yes" if stab["stable_beyond_matched"] else "no")
            if stab and "stable_beyond_matched" in stab else None,
            "quality_node": node_id, "stability_node": stab_id,
        })  # fmt: skip
    return pd.DataFrame(records)


# ----------------------------------------------------------------------------- rendering
class Footnotes:
    """Numbered footnotes, one per store node, in order of first use (deterministic)."""

    def __init__(self) -> None:
        self.numbers: dict[tuple[str, str], int] = {}

    def ref(self, stage: str, node_id: str) -> str:
        key = (stage, node_id)
        if key not in self.numbers:
            self.numbers[key] = len(self.numbers) + 1
        return f"[^{self.numbers[key]}]"

    def lines(self) -> list[str]:
        return [f"[^{n}]: `{stage}` node `{node_id}` (`<store>/{stage}/{node_id}/`)"
                for (stage, node_id), n in self.numbers.items()]  # fmt: skip


def markdown_table(table: Table, notes: Footnotes) -> list[str]:
    lines = [f"| {table.title} | " + " | ".join(table.columns) + " |", "|---|" + "---|" * len(table.columns)]
    for row, cells in table.rows.items():
        texts = []
        for column in table.columns:
            cell = cells.get(column)
            texts.append(f"{cell.text} {notes.ref(cell.stage, cell.node_id)}" if cell else "—")
        lines.append(f"| {row} | " + " | ".join(texts) + " |")
    return lines


def frame_markdown(frame: pd.DataFrame, notes: Footnotes, node_columns: dict[str, str]) -> list[str]:
    """A DataFrame as a markdown table; ``node_columns`` maps a node-id column to its stage (shown as footnotes)."""
    shown = [c for c in frame.columns if c not in node_columns]
    lines = ["| " + " | ".join(shown) + " | source |", "|" + "---|" * (len(shown) + 1)]
    for record in frame.to_dict(orient="records"):
        cells = [fmt(v) if isinstance(v, float) else str(v) for v in (record[c] for c in shown)]
        refs = "".join(notes.ref(stage, record[col]) for col, stage in node_columns.items() if record.get(col))
        lines.append("| " + " | ".join(cells) + f" | {refs} |")
    return lines


def long_frame(table: Table, section: str) -> pd.DataFrame:
    records = [
        {"section": section, "row": row, "column": column, "text": cell.text, "value": cell.value,
         "ci_low": cell.ci_low, "ci_high": cell.ci_high, "p": cell.p, "stage": cell.stage, "node_id": cell.node_id}
        for row, cells in table.rows.items() for column, cell in cells.items()
    ]  # fmt: skip
    return pd.DataFrame(records, columns=["section", "row", "column", "text", "value", "ci_low", "ci_high", "p", "stage", "node_id"])

