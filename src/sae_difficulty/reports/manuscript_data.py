"""Read the synthesis node's JSON for the manuscript: columns, headline numbers and verdicts.

The manuscript never recomputes a number or a verdict: it reads them from
``cross_modal_synthesis.json`` (the synthesis node's ``verdicts`` and its ``main``,
``sae`` and ``sweep`` tables, each cell with its store node).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sae_difficulty.core.verdicts import DEFAULT_MARGIN, delta_verdict, verdict_words
from sae_difficulty.utils.errors import InputError

SYNTHESIS_KEYS = ("config", "verdicts", "main", "sae")


@dataclass(frozen=True)
class Number:
    """One number of the synthesis with its store node."""

    value: float | None
    stage: str
    node_id: str
    ci_low: float | None = None
    ci_high: float | None = None


@dataclass(frozen=True)
class Headline:
    """A column's headline: P2 and P3 AUROCs, Δ(P3−P2) and the verdicts, each number with its node."""

    column: str
    modality: str
    dataset: str
    p2: Number
    p3: Number
    delta: Number
    verdict: str
    causal_effect: bool
    deployable: bool
    k: Number
    n_features: int | None
    pct_oracle: Number
    n_examples: Number | None


def check_synthesis(synthesis: dict[str, Any], source: str) -> None:
    missing = [key for key in SYNTHESIS_KEYS if key not in synthesis]
    if missing:
        raise InputError(f"{source}: missing {', '.join(missing)}; expected the synthesis node's cross_modal_synthesis.json")


def margin(synthesis: dict[str, Any], rules: dict[str, Any]) -> float:
    """The equivalence margin the verdicts used (stored with each verdict), else the config's."""
    for verdict in synthesis["verdicts"].values():
        if verdict.get("equivalence_margin") is not None:
            return float(verdict["equivalence_margin"])
    return float(rules.get("equivalence_margin", DEFAULT_MARGIN))


def words(synthesis: dict[str, Any], rules: dict[str, Any]) -> tuple[str, str, str, str]:
    return verdict_words(margin(synthesis, rules))


def columns(synthesis: dict[str, Any]) -> list[str]:
    """Column names of the main table, in table order."""
    return list(dict.fromkeys(record["column"] for record in synthesis["main"]))


def _cell(synthesis: dict[str, Any], column: str, match) -> dict[str, Any] | None:
    return next((r for r in synthesis["main"] if r["column"] == column and match(r["row"])), None)


def _number(record: dict[str, Any] | None) -> Number | None:
    if record is None:
        return None
    return Number(record.get("value"), record["stage"], record["node_id"], record.get("ci_low"), record.get("ci_high"))


def _rung(synthesis: dict[str, Any], column: str, rung: str) -> Number:
    record = _cell(synthesis, column, lambda row: row.startswith(f"{rung} ") and row.endswith("AUROC"))
    if record is None:
        raise InputError(f"cross_modal_synthesis.json: no {rung} AUROC row for column {column!r}")
    return _number(record)


def stage_node(synthesis: dict[str, Any], column: str, stage: str) -> str | None:
    record = next((r for r in synthesis["main"] if r["column"] == column and r["stage"] == stage), None)
    return record["node_id"] if record else None


def column_verdict(verdict: dict[str, Any], rules_margin: float) -> str:
    """The synthesis' verdict word; a synthesis written before the four-word verdicts stored only
    the 95 % CI (and maybe the 90 % CI): read it with the same rule (a missing 90 % CI is unknown)."""
    if verdict.get("delta_verdict"):
        return str(verdict["delta_verdict"])
    ci90 = verdict.get("ci90") or [None, None]
    as_float = [float("nan") if v is None else float(v) for v in (*verdict["ci"], *ci90)]
    return delta_verdict(as_float[:2], as_float[2:], rules_margin)


def headlines(synthesis: dict[str, Any], modalities: dict[str, str], rules: dict[str, Any]) -> list[Headline]:
    """One headline per column of the main table (``modalities``: column → modality)."""
    m = margin(synthesis, rules)
    out = []
    for column in columns(synthesis):
        verdict = synthesis["verdicts"].get(column)
        if verdict is None:
            raise InputError(f"cross_modal_synthesis.json: column {column!r} has no verdict")
        probe = stage_node(synthesis, column, "probe")
        causal = stage_node(synthesis, column, "causal")
        selective = stage_node(synthesis, column, "selective")
        ci = verdict.get("ci") or [None, None]
        examples = _cell(synthesis, column, lambda row: row.startswith("examples"))
        modality = modalities.get(column, column.split("_", 1)[0])
        out.append(Headline(
            column=column, modality=modality, dataset=column.removeprefix(f"{modality}_"),
            p2=_rung(synthesis, column, "P2"), p3=_rung(synthesis, column, "P3"),
            delta=Number(verdict.get("delta"), "probe", probe, ci[0], ci[1]),
            verdict=column_verdict(verdict, m), causal_effect=bool(verdict.get("causal_effect")),
            deployable=bool(verdict.get("deployable_selective")), k=Number(verdict.get("k_all"), "causal", causal),
            n_features=verdict.get("n_features"), pct_oracle=Number(verdict.get("pct_oracle"), "selective", selective),
            n_examples=_number(examples),
        ))  # fmt: skip
    return out
