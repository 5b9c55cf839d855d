"""Stage `probe`: the five-rung ladder on one (dataset, layer, SAE, pooling).

Labels (``labels.scope``): ``train`` (default) takes the quantile threshold on training
examples only - per outer fold in ``cv`` mode, on the train split in ``holdout`` mode;
``dataset`` is the original study's whole-dataset threshold. The coefficients (whose
top SAE features the causal stage ablates) come from a fit on the train split only.
Time-ordered examples (the tasks' split table has a ``window`` grid position and
``tasks.json`` an ``overlap_windows``): outer folds purged by ``probe.purge_gap`` windows
on each side of a test block, a purged inner CV for C (``probe.inner_cv``: blocked K-fold,
or the original study's forward ``TimeSeriesSplit``), and block bootstrap /
block permutations of ``probe.block_length`` windows (both null = derived from the overlap).
In ``holdout`` mode the training windows within ``purge_gap`` of the test part are
dropped too (the original study's purge gap between its temporal train and test parts).

Poolings: ``last``, ``mean``, ``max`` or ``concat`` (mean, max and last side by side), the
same for the raw activations and the SAE codes. LM filters (``filters``, from
``llm.filters``; :mod:`sae_difficulty.core.filters`): near-duplicate and memorised
prompts are dropped before anything is fitted or scored; probe.json reports what each
dropped, and the causal stage leaves the same examples out.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from sae_difficulty.core.filters import FilterResult, apply_filters
from sae_difficulty.core.folds import (
    PurgedBlockedSplits,
    blocked_inner_splits,
    forward_inner_splits,
    purge_mask,
)
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
    pooled_feature_ids,
    read_pooled,
    read_table,
)
from sae_difficulty.pipeline.runner import NodeContext
from sae_difficulty.reports.figures import plot_ladder
from sae_difficulty.utils.errors import InputError
from sae_difficulty.utils.io import read_json, write_experiment, write_parquet

SCORES = "scores.parquet"
COEFFICIENTS = "coefficients.parquet"

# probe.inner_cv -> (the inner CV that chooses C for time-ordered windows, its name in
# probe.json's ladder settings). "given splits" stays the blocked one's name so that the
# probe.json of a run with the default setting does not change.
INNER_CV = {
    "blocked": (blocked_inner_splits, "given splits"),
    "forward": (forward_inner_splits, "forward purged (TimeSeriesSplit)"),
}


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


PROMPT_PERPLEXITY = "cheap__prompt_perplexity"


def example_filters(tasks_dir, evaluation: pd.DataFrame, filters: dict | None) -> FilterResult:
    """The LM filters of ``filters`` (``llm.filters``) on the evaluated examples; all kept when none is set."""
    filters = filters or {}
    ids, split = evaluation["id"].astype(str).tolist(), evaluation["split"].to_numpy()
    cosine, perplexity = filters.get("near_duplicate_cosine"), filters.get("contamination_perplexity")
    prompts = None
    if cosine is not None:
        from sae_difficulty.modalities.llm.tasks import load_examples

        _, examples = load_examples(tasks_dir)
        by_id = {ex.id: ex.prompt for ex in examples}
        missing = [i for i in ids if i not in by_id]
        if missing:
            raise InputError(f"{tasks_dir}: evaluated example {missing[0]!r} has no task record; expected the same tasks node")
        prompts = [by_id[i] for i in ids]
    if perplexity is not None and PROMPT_PERPLEXITY not in evaluation.columns:
        raise InputError(f"llm.filters.contamination_perplexity: the evaluation table has no {PROMPT_PERPLEXITY!r} column")
    return apply_filters(
        ids, split, prompts=prompts, near_duplicate_cosine=cosine, contamination_perplexity=perplexity,
        prompt_perplexity=None if perplexity is None else evaluation[PROMPT_PERPLEXITY].to_numpy(dtype=np.float64),
    )  # fmt: skip


def holdout_purge(split: np.ndarray, positions: np.ndarray, gap: int) -> np.ndarray:
    """True for the examples a time-ordered holdout keeps: every test window, and the training
    windows farther than ``gap`` grid positions from every test window."""
    is_train = split == "train"
    keep = np.ones(split.size, dtype=bool)
    keep[is_train] = purge_mask(positions[is_train], positions[~is_train], gap)
    return keep


def build(ctx: NodeContext) -> None:
    params = ctx.params
    evaluation = read_table(ctx.parent("evaluate") / EVALUATION, "evaluation table")
    extract_dir, codes_dir = ctx.parent("extract"), ctx.parent("codes")
    _check_order(evaluation["id"], read_table(extract_dir / EXAMPLES, "example ids")["id"], str(extract_dir))
    _check_order(evaluation["id"], read_table(codes_dir / EXAMPLES, "example ids")["id"], str(codes_dir))
    pooling = params["pooling"]
    raw = read_pooled(open_zarr_group(extract_dir / ACTIVATIONS, "activation cache"), pooling, extract_dir / ACTIVATIONS)
    codes = read_pooled(open_zarr_group(codes_dir / CODES, "SAE codes"), pooling, codes_dir / CODES)
    cheap_names = cheap_columns(evaluation)
    dependence = time_order(ctx.parent("tasks"), evaluation, params)
    filtered = example_filters(ctx.parent("tasks"), evaluation, params.get("filters"))
    keep = filtered.keep.copy()
    n_purged_holdout = 0
    if dependence is not None and params["mode"] == "holdout":
        kept_by_purge = holdout_purge(evaluation["split"].to_numpy(), dependence["positions"], dependence["purge_gap"])
        n_purged_holdout = int(np.sum(keep & ~kept_by_purge))
        keep &= kept_by_purge
    evaluation = evaluation[keep].reset_index(drop=True)
    blocks = {
        "cheap": evaluation[cheap_names].to_numpy(dtype=np.float64),
        "raw": raw[keep].astype(np.float64),
        "sae": codes[keep].astype(np.float64),
    }
    error = evaluation["error"].to_numpy(dtype=np.float64)
    split = evaluation["split"].to_numpy()
    labels_cfg = params["labels"]
    y, threshold = difficulty_labels(error, split=split, quantile=labels_cfg["quantile"], scope=labels_cfg["scope"])
    labeler = TrainQuantileLabeler(error, labels_cfg["quantile"]) if labels_cfg["scope"] == "train" else None
    if dependence is not None:
        dependence["positions"] = dependence["positions"][keep]
    options: dict = {"relabel": labeler, "refit_index": np.flatnonzero(split == "train")}
    if params["mode"] == "cv":
        fold_ids = evaluation["fold"].to_numpy()
        options["folds"] = fold_ids if dependence is None else PurgedBlockedSplits(
            fold_ids, dependence["positions"], dependence["purge_gap"])  # fmt: skip
    else:
        options["train_mask"] = split == "train"
    if dependence is not None:
        positions, gap, inner_folds = dependence["positions"], dependence["purge_gap"], params["inner_folds"]
        choice = params.get("inner_cv", "blocked")
        if choice not in INNER_CV:
            raise InputError(f"probe.inner_cv: expected one of {sorted(INNER_CV)}, got {choice!r}")
        splitter, options["inner_cv_name"] = INNER_CV[choice]
        options["inner_splits"] = lambda train, train_y: splitter(positions[train], train_y, inner_folds, gap)
        options["block_length"] = dependence["block_length"]
    result = run_ladder(
        blocks, y, seed=params["seed"], Cs=tuple(params["Cs"]), inner_folds=params["inner_folds"],
        n_boot=params["n_boot"], n_perm=params["n_perm"], penalty=params.get("penalty", "l2"), **options,
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
        "dependence": None if dependence is None else {
            **_dependence_detail(dependence, options.get("folds")), "n_purged_holdout": n_purged_holdout},
        "filters": filtered.to_dict(),
        "sae_width": codes.shape[1] // (3 if pooling == "concat" else 1),
        "n_examples": int(len(result.y_eval)),
        "n_difficult": int(np.sum(result.y_eval)),
        "cheap_features": cheap_names,
        "block_widths": {name: int(block.shape[1]) for name, block in blocks.items()},
        "ladder": result.to_dict(),
    }
    write_experiment(ctx.out, "probe", detail, result.to_frame())
    plot_ladder(result.table, ctx.out / "ladder.png", f"Probe ladder ({pooling} pooling)")


def _probe_detail(probe_dir) -> dict:
    path = probe_dir / "probe.json"
    if not path.is_file():
        raise InputError(f"{path}: missing probe detail; expected the probe node to have written it")
    return read_json(path)


def top_sae_features(probe_dir, n_features: int) -> list[int]:
    """The SAE features with the largest |P5 weight| (P5 = SAE codes only, so positions are feature
    ids; under ``concat`` pooling a feature has three columns and ranks by its largest one)."""
    coefficients = read_table(probe_dir / COEFFICIENTS, "probe coefficients")
    p5 = coefficients[coefficients["rung"] == "P5"]
    if p5.empty:
        raise InputError(f"{probe_dir}: no P5 coefficients; expected the probe ladder to have fit the SAE-only rung")
    width = _probe_detail(probe_dir)["sae_width"]
    order = np.lexsort((p5["position"].to_numpy(), -np.abs(p5["coefficient"].to_numpy())))
    ranked = pooled_feature_ids(p5["position"].to_numpy()[order], width)
    return [int(f) for f in dict.fromkeys(ranked.tolist())][:n_features]


def dropped_ids(probe_dir) -> list[str]:
    """The examples the probe's filters dropped (the causal stage leaves them out too)."""
    filters = _probe_detail(probe_dir).get("filters") or {}
    return sorted({i for spec in (filters.get("filters") or {}).values() for i in spec["ids"]})
