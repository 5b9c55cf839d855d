"""The view rules: the only report code that reads the Snakemake object.

A view copies or renders store nodes into ``results/`` (human-facing files outside the
store, cheap to refresh). Each function here takes the rule's ``snakemake`` object,
reads its inputs/params/outputs, and calls the pure report function that does the work,
so the reports themselves stay testable without Snakemake.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

from sae_difficulty.reports import (
    evals_report,
    ground_truth_report,
    ledger,
    modular_report,
    synthesis,
)
from sae_difficulty.utils.io import write_parquet


def replace_tree(source: Path, target: str | os.PathLike) -> None:
    """Copy a node's figures folder to ``target``, replacing what a previous run left there."""
    target = Path(target)
    if target.exists():
        shutil.rmtree(target)
    shutil.copytree(source, target)


def publish_synthesis(snakemake: Any) -> None:
    """Rule ``publish``: the synthesis node's tables and figures to ``results/``."""
    node = Path(snakemake.input.synthesis).parent
    for name, target in zip(synthesis.PUBLISHED, (snakemake.output.markdown, snakemake.output.table, snakemake.output.detail)):
        shutil.copyfile(node / name, target)
    replace_tree(node / synthesis.FIGURES, snakemake.output.figures)  # paper/generated/ is rule manuscript's


def publish_modular(snakemake: Any) -> None:
    """Rule ``modular_report``: the stability node's report, table and figures to ``results/modular/``."""
    node = Path(snakemake.input.stability).parent
    shutil.copyfile(node / modular_report.REPORT, snakemake.output.markdown)
    shutil.copyfile(node / modular_report.TABLE, snakemake.output.table)
    replace_tree(node / modular_report.FIGURES, snakemake.output.figures)


def publish_ground_truth(snakemake: Any) -> None:
    """Rule ``ground_truth_report``: the answer node's report, table and figures to ``results/``."""
    node = Path(snakemake.input.answer).parent
    markdown_path = Path(snakemake.output.markdown)
    # the figures sit beside the report in the node, in their own folder under results/: point the links there
    figures = os.path.relpath(snakemake.output.figures, markdown_path.parent)
    report = (node / ground_truth_report.REPORT).read_text()
    markdown_path.write_text(report.replace(f"]({ground_truth_report.FIGURES}/", f"]({figures}/"))
    shutil.copyfile(node / ground_truth_report.TABLE, snakemake.output.table)
    replace_tree(node / ground_truth_report.FIGURES, snakemake.output.figures)


def write_evals_report(snakemake: Any) -> None:
    """Rule ``sae_evals_report``: its ``params.nodes`` (stage, key, node id), in the order of the report's titles."""
    store = Path(snakemake.config["store"])
    order = {stage: i for i, stage in enumerate(evals_report.TITLES)}
    described = sorted(snakemake.params.nodes, key=lambda d: (order.get(d["stage"], len(order)), d["key"]))
    nodes = [(d["stage"], d["key"], store / d["stage"] / d["node"]) for d in described]
    evals_report.write_report(nodes, Path(snakemake.output.markdown), Path(snakemake.output.figures))


def write_ledger(snakemake: Any) -> None:
    """Rule ``ledger``: its ``params.nodes`` (described when Snakemake parsed the plan) into ``results/ledger.{md,parquet}``."""
    table = ledger.ledger_rows(snakemake.params.nodes, snakemake.config["store"])
    write_parquet(snakemake.output.table, table)
    Path(snakemake.output.markdown).write_text(ledger.ledger_markdown(table, snakemake.config["name"]))
