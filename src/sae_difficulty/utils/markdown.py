"""Markdown tables of DataFrames, for the ledger and the evaluation report pages."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd

#: Sequences (e.g. selected feature ids) show at most this many items.
MAX_ITEMS = 8


def markdown_cell(value: Any) -> str:
    """One table cell: a dash for missing values, 4 significant digits for floats,
    at most ``MAX_ITEMS`` items of a sequence, text with ``|`` escaped and newlines flattened."""
    if value is None or value is pd.NA or (isinstance(value, float) and math.isnan(value)):
        return "–"
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, (list, tuple, np.ndarray)):
        return ", ".join(map(str, list(value)[:MAX_ITEMS])) + (" …" if len(value) > MAX_ITEMS else "")
    return str(value).replace("|", "\\|").replace("\n", " ")


def markdown_table_lines(frame: pd.DataFrame, max_rows: int | None = None) -> list[str]:
    """``frame`` as markdown table lines (its first ``max_rows`` rows, saying how many were cut)."""
    columns = list(frame.columns)
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    shown = frame if max_rows is None else frame.head(max_rows)
    for record in shown.to_dict("records"):
        lines.append("| " + " | ".join(markdown_cell(record[c]) for c in columns) + " |")
    if max_rows is not None and len(frame) > max_rows:
        lines.append(f"\n({len(frame) - max_rows} more rows in the node's parquet table)")
    return lines
