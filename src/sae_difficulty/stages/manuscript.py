"""View rule `manuscript`: the paper's generated sections (``paper/generated/``) from the synthesis node.

Reads the synthesis node's JSON and figures, the evaluation nodes' headlines and the
modular ground truth from the store, the run's facts from the resolved config and its
plan, and writes the TeX that ``paper/main.tex`` inputs (``reports.manuscript``).
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path
from typing import Any

from sae_difficulty.pipeline.study import build_plan
from sae_difficulty.pipeline.study_evals import EVAL_TITLES
from sae_difficulty.reports import manuscript, run_facts
from sae_difficulty.reports.ledger import HEADLINE_FILE, ledger_status
from sae_difficulty.reports.manuscript_data import columns, stage_node
from sae_difficulty.reports.manuscript_results import FIGURE_KINDS, EvalHeadline, Panel
from sae_difficulty.reports.modular_report import synthesis_rows
from sae_difficulty.utils.errors import InputError
from sae_difficulty.utils.io import read_json

SYNTHESIS_JSON = "cross_modal_synthesis.json"
FIGURES = "figures"
#: Headline nodes outside the evaluation suite: the synthetic ground-truth study, when the config runs it.
TITLES = {**EVAL_TITLES, "ground_truth": "Ground truth: cross-seed stability vs recovery of planted features"}


def safe_name(text: str) -> str:
    """A file name TeX reads anywhere (letters, digits, hyphens)."""
    return re.sub(r"[^A-Za-z0-9]+", "-", text).strip("-").lower()


def figure_panels(synthesis: dict[str, Any], node: Path, out: Path) -> dict[str, list[Panel]]:
    """Copy each column's figures of the synthesis node to ``out/figures`` and describe them as panels."""
    (out / FIGURES).mkdir(parents=True, exist_ok=True)
    panels: dict[str, list[Panel]] = {}
    for kind, stage, name in FIGURE_KINDS:
        for column in columns(synthesis):
            source = node / FIGURES / f"{column}__{stage}__{name}"
            node_id = stage_node(synthesis, column, stage)
            if not source.is_file() or node_id is None:
                continue
            target = f"{safe_name(column)}-{safe_name(kind)}.png"
            shutil.copyfile(source, out / FIGURES / target)
            panels.setdefault(kind, []).append(Panel(column, f"{out.name}/{FIGURES}/{target}", node_id))
    return panels


def eval_headlines(store: Path, nodes: list[dict[str, str]]) -> list[EvalHeadline]:
    """Each evaluation node's headline (``nodes``: stage, key, node id), in the suite's order."""
    order = {stage: i for i, stage in enumerate(TITLES)}
    out = []
    for described in sorted(nodes, key=lambda d: (order.get(d["stage"], len(order)), d["key"])):
        path = store / described["stage"] / described["node"] / HEADLINE_FILE
        if not path.is_file():
            raise InputError(f"{path}: missing; expected the {described['stage']} node to have written its headline")
        h = read_json(path)
        status = ledger_status(h["value"], h["ci_low"], h["ci_high"], h["null"], int(h.get("claim_sign", 0)))
        out.append(EvalHeadline(described["stage"], TITLES.get(described["stage"], described["stage"]), described["node"],
                                h["metric"], h["value"], h["ci_low"], h["ci_high"], h["null"], status))  # fmt: skip
    return out


def write_view(snakemake: Any) -> None:
    """The ``manuscript`` rule: ``input.synthesis`` (the node's manifest), ``params.evals`` (evaluation nodes),
    ``output.tex`` (``paper/generated``)."""
    config = snakemake.config
    store = Path(config["store"])
    node = Path(snakemake.input.synthesis).parent
    plan = build_plan(config)
    if plan.synthesis.id != node.name:
        raise InputError(f"{node}: not this config's synthesis node (expected {plan.synthesis.id}); re-run the workflow")
    synthesis = read_json(node / SYNTHESIS_JSON)
    out = Path(snakemake.output.tex)
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    facts = run_facts.collect(plan, config, store)
    modular = synthesis_rows(store / "modular_stability" / plan.modular["stability"].id).to_dict("records") if plan.modular else []
    headline_nodes = list(snakemake.params.evals)
    synthetic = getattr(plan, "synthetic", None)
    if synthetic:  # the ground-truth study's node is a parent of the synthesis: it exists
        answer = synthetic["answer"]
        headline_nodes.append({"stage": answer.stage, "key": answer.key, "node": answer.id})
    files = manuscript.render(synthesis, facts, figure_panels(synthesis, node, out),
                              eval_headlines(store, headline_nodes), modular)  # fmt: skip
    for name, text in files.items():
        (out / name).write_text(text)
