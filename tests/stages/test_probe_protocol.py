"""Stage probe, the original study's protocol: max and concat poolings, the LM example filters
(near-duplicate and memorised prompts) and the purge gap of a time-ordered holdout.

Planted data: the error sits only in the max-pooled view (raw dimension 0 and SAE feature 3),
so max and concat find it and mean does not; one near-duplicate prompt pair and one prompt of
perplexity 1.2 are dropped and counted; training windows next to the test part of a
time-ordered holdout are left out, and with ``inner_cv: forward`` C is chosen by a purged
TimeSeriesSplit that never trains on later windows.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import node_context

from sae_difficulty.pipeline.artifacts import ACTIVATIONS, CODES, EVALUATION, EXAMPLES
from sae_difficulty.saes.cache import write_activation_cache, write_codes
from sae_difficulty.stages import probe
from sae_difficulty.stages.synthesis import example_filter_lines
from sae_difficulty.utils.io import read_json, write_json

N, TOKENS, D, D_SAE, SIGNAL_FEATURE = 200, 3, 6, 12, 3
PARAMS = {"seed": 0, "labels": {"quantile": 0.75, "scope": "train"}, "Cs": [1.0], "n_boot": 100,
          "n_perm": 100, "mode": "cv", "inner_folds": 2, "purge_gap": None, "block_length": None}  # fmt: skip
VOCABULARY = [f"w{i}" for i in range(400)]
DUPLICATE_OF, DUPLICATE, MEMORISED = 10, 57, 31


def max_only_parents(
    root: Path, examples: pd.DataFrame, seed: int = 0
) -> dict[str, Path]:
    """Parents whose error is visible only in the max over positions (mean and last are noise)."""
    rng = np.random.default_rng(seed)
    n = len(examples)
    error = rng.exponential(1.0, n)
    dirs = {role: root / role for role in ("tasks", "evaluate", "extract", "codes")}
    for directory in dirs.values():
        directory.mkdir(parents=True, exist_ok=True)
    examples.to_parquet(dirs["tasks"] / EXAMPLES)
    examples.assign(error=error, cheap__a=rng.normal(size=n), cheap__b=rng.normal(size=n),
                    cheap__prompt_perplexity=rng.uniform(5, 50, n)).to_parquet(dirs["evaluate"] / EVALUATION)  # fmt: skip
    tokens = rng.normal(size=(n, TOKENS, D)).astype(np.float32)
    # dimension 0: +e and -e at the first two positions (in random order), small noise last:
    # the max is about e, the mean is noise/3, the last is noise
    sign = rng.choice([-1.0, 1.0], n)
    tokens[:, 0, 0], tokens[:, 1, 0] = sign * error, -sign * error
    tokens[:, 2, 0] = 0.05 * rng.normal(size=n)
    write_activation_cache(
        dirs["extract"] / ACTIVATIONS, tokens.reshape(-1, D), np.arange(n + 1) * TOKENS
    )
    pooled = {
        name: np.abs(rng.normal(size=(n, D_SAE))).astype(np.float32)
        for name in ("last", "mean", "max")
    }
    pooled["max"][:, SIGNAL_FEATURE] = error + 0.05 * rng.normal(size=n)
    write_codes(dirs["codes"] / CODES, pooled)
    for role in ("extract", "codes"):
        examples.to_parquet(dirs[role] / EXAMPLES)
    return dirs


def iid_examples(n: int = N) -> pd.DataFrame:
    return pd.DataFrame({"id": [f"ex-{i:04d}" for i in range(n)], "split": np.where(np.arange(n) < 140, "train", "test"),
                         "fold": np.arange(n) % 5})  # fmt: skip


@pytest.fixture(scope="module")
def pooling_probes(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("poolings")
    parents = max_only_parents(root / "parents", iid_examples())
    out = {}
    for prefix, pooling in zip("abc", ("mean", "max", "concat")):
        ctx = node_context(
            "probe",
            {**PARAMS, "pooling": pooling},
            root / f"{prefix}{'0' * 11}",
            parents,
        )
        probe.build(ctx)
        out[pooling] = ctx.out
    return out


def _aurocs(probe_dir: Path) -> dict[str, float]:
    ladder = read_json(probe_dir / "probe.json")["ladder"]
    return {row["rung"]: row["auroc"] for row in ladder["table"]}


def test_a_signal_only_in_the_max_view_is_found_by_max_and_concat_not_by_mean(
    pooling_probes: dict[str, Path],
) -> None:
    for pooling in ("max", "concat"):
        aurocs = _aurocs(pooling_probes[pooling])
        assert aurocs["P4"] > 0.85 and aurocs["P5"] > 0.85, (pooling, aurocs)
    mean = _aurocs(pooling_probes["mean"])
    assert mean["P4"] < 0.65 and mean["P5"] < 0.65, mean


def test_concat_stacks_mean_max_and_last_and_its_top_feature_is_the_planted_one(
    pooling_probes: dict[str, Path],
) -> None:
    detail = read_json(pooling_probes["concat"] / "probe.json")
    assert detail["block_widths"] == {"cheap": 3, "raw": 3 * D, "sae": 3 * D_SAE}
    assert detail["sae_width"] == D_SAE
    # the planted feature's max column is D_SAE + 3 of the stack; the causal stage gets feature 3
    coefficients = pd.read_parquet(pooling_probes["concat"] / probe.COEFFICIENTS)
    p5 = coefficients[coefficients["rung"] == "P5"]
    assert (
        int(p5.loc[p5["coefficient"].abs().idxmax(), "position"])
        == D_SAE + SIGNAL_FEATURE
    )
    assert probe.top_sae_features(pooling_probes["concat"], 3)[0] == SIGNAL_FEATURE
    assert (
        len(set(probe.top_sae_features(pooling_probes["concat"], 3))) == 3
    )  # three distinct features


# --------------------------------------------------------------------------- LM filters


def write_hellaswag_tasks(tasks_dir: Path, ids: list[str], seed: int = 0) -> None:
    """HellaSwag records with unrelated random-word contexts, except one planted near copy."""
    rng = np.random.default_rng(seed)
    contexts = [" ".join(rng.choice(VOCABULARY, 14, replace=False)) for _ in ids]
    words = contexts[DUPLICATE_OF].split()
    words[-1] = "changed"
    contexts[DUPLICATE] = " ".join(
        words
    )  # 13 of 14 words shared: TF-IDF cosine well above 0.7
    records = [
        {"id": record_id, "ctx": ctx, "endings": ["a", "b", "c", "d"], "label": 0}
        for record_id, ctx in zip(ids, contexts)
    ]
    (tasks_dir / "records.jsonl").write_text(
        "".join(json.dumps(record) + "\n" for record in records)
    )
    write_json(tasks_dir / "task.json", {"dataset": "hellaswag", "source": "demo"})


@pytest.fixture(scope="module")
def filtered_probe(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("filters")
    examples = iid_examples()
    parents = max_only_parents(root / "parents", examples)
    write_hellaswag_tasks(parents["tasks"], examples["id"].tolist())
    evaluation = pd.read_parquet(parents["evaluate"] / EVALUATION)
    evaluation.loc[MEMORISED, "cheap__prompt_perplexity"] = (
        1.2  # reproduced almost verbatim: memorised
    )
    evaluation.to_parquet(parents["evaluate"] / EVALUATION)
    params = {
        **PARAMS,
        "pooling": "max",
        "filters": {"near_duplicate_cosine": 0.7, "contamination_perplexity": 1.5},
    }
    ctx = node_context("probe", params, root / "f00000000000", parents)
    probe.build(ctx)
    return ctx.out


def test_a_near_duplicate_and_a_memorised_prompt_are_dropped_and_counted(
    filtered_probe: Path,
) -> None:
    detail = read_json(filtered_probe / "probe.json")
    filters = detail["filters"]
    assert filters["filters"]["near_duplicate"]["ids"] == [
        f"ex-{DUPLICATE:04d}"
    ]  # the later of the pair
    assert filters["filters"]["contamination"]["ids"] == [f"ex-{MEMORISED:04d}"]
    assert (
        filters["filters"]["near_duplicate"]["n_dropped"]
        == filters["filters"]["contamination"]["n_dropped"]
        == 1
    )
    assert filters["filters"]["near_duplicate"]["n_dropped_by_split"] == {
        "test": 0,
        "train": 1,
    }
    assert (filters["n_examples"], filters["n_kept"]) == (N, N - 2)
    scores = pd.read_parquet(filtered_probe / probe.SCORES)
    assert len(scores) == N - 2 and not {
        f"ex-{DUPLICATE:04d}",
        f"ex-{MEMORISED:04d}",
    } & set(scores["id"])
    assert f"ex-{DUPLICATE_OF:04d}" in set(
        scores["id"]
    )  # the earlier prompt of the pair stays
    assert probe.dropped_ids(filtered_probe) == sorted(
        [f"ex-{DUPLICATE:04d}", f"ex-{MEMORISED:04d}"]
    )
    line = example_filter_lines({"llm_hellaswag": {"probe": detail}})[0]
    assert "near-duplicate prompts (TF-IDF cosine ≥ 0.7): 1 dropped" in line
    assert (
        "memorised prompts (prompt-only perplexity ≤ 1.5): 1 dropped" in line
        and f"{N - 2} of {N}" in line
    )


# --------------------------------------------------------------------------- time-ordered holdout

GAP = 3


def test_a_time_ordered_holdout_purges_training_windows_next_to_the_test_part(
    tmp_path: Path,
) -> None:
    n, cutoff = 120, 84
    examples = pd.DataFrame({"id": [f"w-{i:04d}" for i in range(n)], "split": np.where(np.arange(n) < cutoff, "train", "test"),
                             "fold": (np.arange(n) * 5) // n, "window": np.arange(n, dtype=np.int64)})  # fmt: skip
    parents = max_only_parents(tmp_path / "parents", examples)
    write_json(parents["tasks"] / "tasks.json", {"overlap_windows": GAP})
    ctx = node_context(
        "probe",
        {**PARAMS, "pooling": "max", "mode": "holdout"},
        tmp_path / "h00000000000",
        parents,
    )
    probe.build(ctx)
    detail = read_json(ctx.out / "probe.json")
    assert detail["dependence"]["purge_gap"] == GAP
    assert (
        detail["dependence"]["n_purged_holdout"] == GAP
    )  # windows cutoff-3 .. cutoff-1
    settings = detail["ladder"]["settings"]
    assert (
        settings["n_refit"] == cutoff - GAP and settings["inner_cv"] == "given splits"
    )
    scores = pd.read_parquet(ctx.out / probe.SCORES)
    assert set(scores["id"]) == {
        f"w-{i:04d}" for i in range(cutoff, n)
    }  # only the test part is scored


def test_holdout_purge_keeps_train_windows_farther_than_the_gap_from_every_test_window() -> (
    None
):
    split = np.array(["train"] * 10 + ["test"] * 5 + ["train"] * 5)
    keep = probe.holdout_purge(split, np.arange(20), 2)
    assert np.flatnonzero(~keep).tolist() == [
        8,
        9,
        15,
        16,
    ]  # purge before, embargo after
    assert keep[split == "test"].all()


def test_inner_cv_forward_chooses_C_by_purged_time_series_split_and_probe_json_names_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """probe.inner_cv forward (config/paper.yaml, the original's TimeSeriesSplit): every inner fold of
    the time-ordered probe trains on earlier windows only, farther than the purge gap from its
    test block, and probe.json says which inner CV ran."""
    n, cutoff = 120, 84
    examples = pd.DataFrame({"id": [f"w-{i:04d}" for i in range(n)], "split": np.where(np.arange(n) < cutoff, "train", "test"),
                             "fold": (np.arange(n) * 5) // n, "window": np.arange(n, dtype=np.int64)})  # fmt: skip
    parents = max_only_parents(tmp_path / "parents", examples)
    write_json(parents["tasks"] / "tasks.json", {"overlap_windows": GAP})
    splitter, name = probe.INNER_CV["forward"]
    inner_folds_seen = []

    def recording(positions, labels, n_folds, gap):
        splits = splitter(positions, labels, n_folds, gap)
        inner_folds_seen.extend(
            (positions[train].max(), positions[test].min()) for train, test in splits
        )
        return splits

    monkeypatch.setitem(probe.INNER_CV, "forward", (recording, name))
    ctx = node_context(
        "probe",
        {**PARAMS, "pooling": "max", "mode": "holdout", "inner_cv": "forward"},
        tmp_path / "t00000000000",
        parents,
    )
    probe.build(ctx)
    assert inner_folds_seen and all(last_train + GAP < first_test for last_train, first_test in inner_folds_seen)
    settings = read_json(ctx.out / "probe.json")["ladder"]["settings"]
    assert settings["inner_cv"] == "forward purged (TimeSeriesSplit)"
    assert settings["n_refit"] == cutoff - GAP
    assert _aurocs(ctx.out)["P5"] > 0.85  # the planted max-view signal is still found
