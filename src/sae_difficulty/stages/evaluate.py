"""Stage `evaluate`: the backbone's error on every task example, and the cheap features."""

from __future__ import annotations

import pandas as pd

from sae_difficulty.modalities import load_backbone
from sae_difficulty.pipeline.artifacts import (
    EVALUATION,
    EXAMPLES,
    cheap_columns,
    read_table,
)
from sae_difficulty.pipeline.runner import NodeContext
from sae_difficulty.utils.errors import InputError
from sae_difficulty.utils.io import write_json, write_parquet


def build(ctx: NodeContext) -> None:
    params = dict(ctx.params)
    seed = params.pop("seed")
    tasks_dir = ctx.parent("tasks")
    modality, model = load_backbone(ctx.parent("backbone"))
    table = modality.evaluate(model, tasks_dir, params, seed)
    examples = read_table(tasks_dir / EXAMPLES, "split table")
    if list(table["id"]) != list(examples["id"]):
        raise InputError(f"{tasks_dir}: evaluation ids differ from the split table's; expected one row per example in order")
    table = pd.concat([examples[["split", "fold"]].reset_index(drop=True), table.reset_index(drop=True)], axis=1)
    write_parquet(ctx.out / EVALUATION, table)
    summary = {
        "n_examples": len(table),
        "mean_error": float(table["error"].mean()),
        "cheap_features": cheap_columns(table),
    }
    if "correct" in table:
        summary["accuracy"] = float(table["correct"].mean())
    write_json(ctx.out / "evaluation.json", summary)
