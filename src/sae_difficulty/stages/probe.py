"""Stage `probe`: the five-rung ladder on one (dataset, layer, SAE, pooling).

Labels (``labels.scope``): ``train`` (default) takes the quantile threshold on training
examples only - per outer fold in ``cv`` mode, on the train split in ``holdout`` mode;
``dataset`` is the original study's whole-dataset threshold. The coefficients (whose
top SAE features the causal stage ablates) come from a fit on the train split only.
Time-ordered examples (the tasks' split table has a ``window`` grid position and
``tasks.json`` an ``overlap_windows``): outer folds purged by ``probe.purge_gap`` windows
on each side of a test block, a blocked purged inner CV for C, and block bootstrap /
block permutations of ``probe.block_length`` windows (both null = derived from the overlap).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from sae_difficulty.core.folds import PurgedBlockedSplits, blocked_inner_splits
from sae_difficulty.core.labels import TrainQuantileLabeler, difficulty_labels
from sae_difficulty.core.probe import RUNGS, run_ladder
from sae_difficulty.core.resampling import default_block_length
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
from sae_difficulty.utils.io import read_json, write_experiment, write_parquet

SCORES = "scores.parquet"
COEFFICIENTS = "coefficients.parquet"


def _check_order(ids: pd.Series, other: pd.Series, what: str) -> None:
    if list(ids) != list(other):
        raise InputError(f"{what}: example order differs from the evaluation table; expected the same tasks node")


def time_order(tasks_dir, evaluation: pd.DataFrame, params: dict) -> dict | None:
    """Grid positions, purge gap and block length when the tasks are time-ordered windows, else None."""
    examples = read_table(tasks_dir / EXAMPLES, "split table")
    if "window" not in examples.columns:
        return None
    _check_order(evaluation["id"], examples["id"], str(tasks_dir))
    overlap = read_json(tasks_dir / "tasks.json").get("overlap_windows")
    if overlap is None:
        raise InputError(f"{tasks_dir / 'tasks.json'}: windows without `overlap_windows`; expected a tasks node of this version")
    gap = params.get("purge_gap")
    block = params.get("block_length")
    return {
        "positions": examples["window"].to_numpy(dtype=np.int64),
        "overlap_windows": int(overlap),
        "purge_gap": int(overlap if gap is None else gap),
        "block_length": int(default_block_length(overlap) if block is None else block),
    }


def _dependence_detail(dependence: dict, folds) -> dict:
    """What the probe did about time order (for probe.json): gap, block length, windows purged per fold."""
    detail = {key: value for key, value in dependence.items() if key != "positions"}
    detail["n_purged_by_fold"] = folds.n_purged() if isinstance(folds, PurgedBlockedSplits) else []
    return detail


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
    labeler = TrainQuantileLabeler(error, labels_cfg["quantile"]) if labels_cfg["scope"] == "train" else None
    dependence = time_order(ctx.parent("tasks"), evaluation, params)
    options: dict = {"relabel": labeler, "refit_index": np.flatnonzero(split == "train")}
    if params["mode"] == "cv":
        fold_ids = evaluation["fold"].to_numpy()
        options["folds"] = fold_ids if dependence is None else PurgedBlockedSplits(
            fold_ids, dependence["positions"], dependence["purge_gap"])  # fmt: skip
    else:
        options["train_mask"] = split == "train"
    if dependence is not None:
        positions, gap, inner_folds = dependence["positions"], dependence["purge_gap"], params["inner_folds"]
        options["inner_splits"] = lambda train, train_y: blocked_inner_splits(positions[train], train_y, inner_folds, gap)
        options["block_length"] = dependence["block_length"]
    result = run_ladder(
        blocks, y, seed=params["seed"], Cs=tuple(params["Cs"]), inner_folds=params["inner_folds"],
        n_boot=params["n_boot"], n_perm=params["n_perm"], **options,
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
        "label_scope": labels_cfg["scope"],
        "label_threshold": threshold if labeler is None else None,
        "label_thresholds_by_split": None if labeler is None else labeler.thresholds,
        "dependence": None if dependence is None else _dependence_detail(dependence, options.get("folds")),
        "n_examples": int(len(result.y_eval)),
        "n_difficult": int(np.sum(result.y_eval)),
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
