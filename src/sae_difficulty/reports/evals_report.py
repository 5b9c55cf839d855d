"""``results/sae_evals.md``: the evaluation suite's headlines, tables and figures on one page.

A view over the store (the ``sae_evals_report`` rule): it copies each evaluation node's
figure and the top-contexts page next to the report and renders each node's table.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pandas as pd

from sae_difficulty.pipeline.study_evals import EVAL_TITLES
from sae_difficulty.reports.ledger import HEADLINE_FILE, ledger_status
from sae_difficulty.utils.io import read_json
from sae_difficulty.utils.markdown import markdown_table_lines

TITLES = EVAL_TITLES
MAX_ROWS = 40


def headline_line(headline: dict[str, Any]) -> str:
    value, low, high = headline["value"], headline["ci_low"], headline["ci_high"]
    ci = f" [{low:.4g}, {high:.4g}]" if low is not None and high is not None else ""
    shown = f"{value:.4g}" if isinstance(value, float) else str(value)
    status = ledger_status(value, low, high, headline["null"], int(headline.get("claim_sign", 0)))
    claim = f" Claim checked: {headline['claim']}." if headline.get("claim") else ""
    return f"**{headline['metric']}**: {shown}{ci} (null {headline['null']}) → *{status}*.{claim}"


def write_report(nodes: list[tuple[str, str, Path]], out_markdown: Path, out_dir: Path) -> None:
    """``nodes``: (stage, key, node directory) of every evaluation node, in report order."""
    out_dir.mkdir(parents=True, exist_ok=True)
    lines = ["# SAE evaluation suite", "",
             "Each section is one store node (`rules/sae_evals.smk`, `src/sae_difficulty/evals/`); "
             "the run ledger (`results/ledger.md`) lists every node with its status.", ""]  # fmt: skip
    for stage, key, directory in nodes:
        name = stage.removeprefix("eval_")
        lines += [f"## {TITLES.get(stage, stage)}", "", f"Node `{directory.name}` (`{key}`).", ""]
        lines += [headline_line(read_json(directory / HEADLINE_FILE)), ""]
        figure = directory / f"{name}.png"
        if figure.is_file():
            target = f"{directory.name}_{name}.png"
            shutil.copyfile(figure, out_dir / target)
            lines += [f"![{name}]({out_dir.name}/{target})", ""]
        if (directory / "top_contexts.md").is_file():
            shutil.copyfile(directory / "top_contexts.md", out_dir / "top_contexts.md")
            lines += [f"Top-activating contexts of the most domain-selective features: [{out_dir.name}/top_contexts.md]({out_dir.name}/top_contexts.md)", ""]
        lines += markdown_table_lines(pd.read_parquet(directory / f"{name}.parquet"), MAX_ROWS) + [""]
    out_markdown.write_text("\n".join(lines))
