"""Stage `eval_sparse_probing`: top-k SAE latents vs top-k residual dimensions on binary tasks.

Tasks: prose vs code windows; code windows that use ``self.`` (method bodies, built
from the corpus); and per LM dataset the study's difficulty labels (the demo tasks'
own train/test split).
"""

from __future__ import annotations

import numpy as np

from sae_difficulty.core.labels import difficulty_labels
from sae_difficulty.evals import sparse_probing
from sae_difficulty.modalities.llm.domains import read_domain_cache
from sae_difficulty.pipeline.artifacts import (
    ACTIVATIONS,
    CODES,
    EVALUATION,
    SAE_DIR,
    backbone_source,
    open_zarr_group,
    read_pooled,
    read_table,
)
from sae_difficulty.pipeline.runner import NodeContext
from sae_difficulty.saes.encoding import encode_rows
from sae_difficulty.stages.evals_common import load_checked_sae, write_evaluation


def window_means(rows: np.ndarray, context_length: int) -> np.ndarray:
    """Mean of each window's rows (row i belongs to window i // (context_length - 1))."""
    per_window = context_length - 1
    starts = np.arange(0, len(rows), per_window)
    return np.add.reduceat(rows.astype(np.float64), starts, axis=0) / np.diff(np.append(starts, len(rows)))[:, None]


def _tokenizer(backbone_dir):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(backbone_source(backbone_dir))


def build(ctx: NodeContext) -> None:
    params = ctx.params
    config = sparse_probing.SparseProbingConfig.from_dict({"ks": tuple(params["ks"]), "n_boot": params["n_boot"],
                                                           "C": params["C"], "seed": params["seed"]})  # fmt: skip
    caches = {domain: read_domain_cache(ctx.parent(f"acts_{domain}") / ACTIVATIONS) for domain in ("prose", "code")}
    heldout = {domain: np.asarray(cache[1]) for domain, cache in caches.items()}
    sae, check = load_checked_sae(ctx.parent("sae") / SAE_DIR, heldout["code"], params["encode_fidelity"])
    context_length = caches["code"][2].shape[1]
    raw = {domain: window_means(rows, context_length) for domain, rows in heldout.items()}
    codes = {domain: window_means(encode_rows(sae, rows), context_length) for domain, rows in heldout.items()}
    tasks = {}
    is_code = np.r_[np.zeros(len(raw["prose"]), bool), np.ones(len(raw["code"]), bool)]
    tasks["prose_vs_code"] = (np.vstack([codes["prose"], codes["code"]]), np.vstack([raw["prose"], raw["code"]]), is_code, None)
    tokenizer = _tokenizer(ctx.parent("backbone"))
    texts = [tokenizer.decode(window[1:]) for window in caches["code"][2][: len(raw["code"])]]
    # Method bodies vs module-level code: about half the windows of the standard library.
    uses_self = np.array(["self." in text for text in texts])
    tasks["code_uses_self"] = (codes["code"], raw["code"], uses_self, None)
    for dataset in params["datasets"]:
        evaluation = read_table(ctx.parent(f"{dataset}__evaluate") / EVALUATION, "evaluation table")
        split = evaluation["split"].to_numpy()
        y, _ = difficulty_labels(evaluation["error"].to_numpy(dtype=np.float64), split=split,
                                 quantile=params["labels"]["quantile"], scope=params["labels"]["scope"])  # fmt: skip
        extract_path = ctx.parent(f"{dataset}__extract") / ACTIVATIONS
        codes_path = ctx.parent(f"{dataset}__codes") / CODES
        x_raw = read_pooled(open_zarr_group(extract_path, "activation cache"), params["pooling"], extract_path)
        x_sae = read_pooled(open_zarr_group(codes_path, "SAE codes"), params["pooling"], codes_path)
        tasks[f"{dataset}_difficult"] = (x_sae, x_raw, y, split == "train")
    frames, skipped = [], {}
    for name, (x_sae, x_raw, y, train_mask) in tasks.items():
        if train_mask is None:
            train_idx, test_idx = sparse_probing.train_test_split_indices(len(y), params["test_fraction"], params["seed"], y)
        else:
            train_idx, test_idx = np.flatnonzero(train_mask), np.flatnonzero(~train_mask)
        counts = [int(np.sum(y[idx])) for idx in (train_idx, test_idx)]
        if min(counts) < 2 or min(len(train_idx) - counts[0], len(test_idx) - counts[1]) < 2:
            # A task with (almost) one class on a split has nothing to probe; recorded, not fatal.
            skipped[name] = f"positives train/test {counts} of {len(train_idx)}/{len(test_idx)}: fewer than 2 of a class"
            continue
        frames.append(sparse_probing.sparse_probe_task(name, x_sae, x_raw, y.astype(int), train_idx, test_idx, config))
    result = sparse_probing.SparseProbingResult.from_tasks(frames, config)
    write_evaluation(ctx.out, "sparse_probing", result, {"sae": check, "skipped_tasks": skipped})
