"""Stage `probe`: the five-rung ladder on one (dataset, layer, SAE, pooling)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from sae_difficulty.core.labels import difficulty_labels
from sae_difficulty.core.probe import RUNGS, run_ladder
from sae_difficulty.pipeline.artifacts import (
    ACTIVATIONS,
    CODES,
    EVALUATION,
    EXAMPLES,
    cheap_columns,
    open_zarr_group,
    read_array,
    read_table,
)
from sae_difficulty.pipeline.runner import NodeContext
from sae_difficulty.reports.figures import plot_ladder
from sae_difficulty.utils.errors import InputError
from sae_difficulty.utils.io import write_experiment, write_parquet

SCORES = "scores.parquet"
COEFFICIENTS = "coefficients.parquet"


def _check_order(ids: pd.Series, other: pd.Series, what: str) -> None:
    if list(ids) != list(other):
        raise InputError(f"{what}: example order differs from the evaluation table; expected the same tasks node")


def build(ctx: NodeContext) -> None:
    params = ctx.params
    evaluation = read_table(ctx.parent("evaluate") / EVALUATION, "evaluation table")
    extract_dir, codes_dir = ctx.parent("extract"), ctx.parent("codes")
    _check_order(evaluation["id"], read_table(extract_dir / EXAMPLES, "example ids")["id"], str(extract_dir))
    _check_order(evaluation["id"], read_table(codes_dir / EXAMPLES, "example ids")["id"], str(codes_dir))
    pooling = params["pooling"]
    raw = read_array(open_zarr_group(extract_dir / ACTIVATIONS, "activation cache"), pooling, extract_dir / ACTIVATIONS)
    codes = read_array(open_zarr_group(codes_dir / CODES, "SAE codes"), pooling, codes_dir / CODES)
    cheap_names = cheap_columns(evaluation)
    blocks = {
        "cheap": evaluation[cheap_names].to_numpy(dtype=np.float64),
        "raw": raw.astype(np.float64),
        "sae": codes.astype(np.float64),
    }
    error = evaluation["error"].to_numpy(dtype=np.float64)
    split = evaluation["split"].to_numpy()
    labels_cfg = params["labels"]
    y, threshold = difficulty_labels(error, split=split, quantile=labels_cfg["quantile"], scope=labels_cfg["scope"])
    splitter = (
        {"folds": evaluation["fold"].to_numpy()} if params["mode"] == "cv" else {"train_mask": split == "train"}
    )
    result = run_ladder(
        blocks, y, seed=params["seed"], Cs=tuple(params["Cs"]), inner_folds=params["inner_folds"],
        n_boot=params["n_boot"], n_perm=params["n_perm"], **splitter,
    )  # fmt: skip
    index = np.asarray(result.eval_index)
    scores = pd.DataFrame({
        "id": evaluation["id"].to_numpy()[index], "y": np.asarray(result.y_eval), "error": error[index],
        **{rung: np.asarray(result.scores[rung]) for rung in RUNGS},
    })  # fmt: skip
    write_parquet(ctx.out / SCORES, scores)
    coefficient_rows = [
        {"rung": rung, "position": i, "coefficient": float(w)}
        for rung, weights in sorted(result.coefficients.items())
        for i, w in enumerate(np.asarray(weights).ravel())
    ]
    write_parquet(ctx.out / COEFFICIENTS, pd.DataFrame(coefficient_rows))
    detail = {
        "pooling": pooling,
        "mode": params["mode"],
        "label_threshold": threshold,
        "n_examples": int(len(y)),
        "n_difficult": int(np.sum(y)),
        "cheap_features": cheap_names,
        "block_widths": {name: int(block.shape[1]) for name, block in blocks.items()},
        "ladder": result.to_dict(),
    }
    write_experiment(ctx.out, "probe", detail, result.to_frame())
    plot_ladder(result.table, ctx.out / "ladder.png", f"Probe ladder ({pooling} pooling)")


def top_sae_features(probe_dir, n_features: int) -> list[int]:
    """The SAE features with the largest |P5 weight| (P5 = SAE codes only, so positions are feature ids)."""
    coefficients = read_table(probe_dir / COEFFICIENTS, "probe coefficients")
    p5 = coefficients[coefficients["rung"] == "P5"]
    if p5.empty:
        raise InputError(f"{probe_dir}: no P5 coefficients; expected the probe ladder to have fit the SAE-only rung")
    order = np.lexsort((p5["position"].to_numpy(), -np.abs(p5["coefficient"].to_numpy())))
    return [int(p5["position"].to_numpy()[i]) for i in order[:n_features]]
