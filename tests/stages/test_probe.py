"""Stage probe: the five-rung ladder on planted blocks. The error is planted in raw dimension 0
and SAE feature 3 (of the last token); the cheap features are noise. Rungs that see the signal
separate difficult examples, the cheap rung does not, and the top P5 feature is feature 3."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import node_context

from sae_difficulty.pipeline.artifacts import ACTIVATIONS, CODES, EVALUATION, EXAMPLES
from sae_difficulty.saes.cache import write_activation_cache, write_codes
from sae_difficulty.stages import probe
from sae_difficulty.utils.errors import InputError
from sae_difficulty.utils.io import read_json

N, TOKENS, D, D_SAE, SIGNAL_FEATURE = 200, 3, 6, 12, 3
PARAMS = {"pooling": "last", "seed": 0, "labels": {"quantile": 0.75, "scope": "train"}, "Cs": [1.0], "n_boot": 100,
          "n_perm": 100, "mode": "cv", "inner_folds": 2, "purge_gap": None, "block_length": None}  # fmt: skip


def planted_parents(root: Path, seed: int = 0) -> dict[str, Path]:
    rng = np.random.default_rng(seed)
    ids = [f"ex-{i:04d}" for i in range(N)]
    examples = pd.DataFrame({"id": ids, "split": np.where(np.arange(N) < 140, "train", "test"), "fold": np.arange(N) % 5})
    error = rng.exponential(1.0, N)
    dirs = {role: root / role for role in ("tasks", "evaluate", "extract", "codes")}
    for directory in dirs.values():
        directory.mkdir(parents=True)
    examples.to_parquet(dirs["tasks"] / EXAMPLES)
    evaluation = examples.assign(error=error, cheap__a=rng.normal(size=N), cheap__b=rng.normal(size=N))
    evaluation.to_parquet(dirs["evaluate"] / EVALUATION)
    tokens = rng.normal(size=(N, TOKENS, D)).astype(np.float32)
    tokens[:, -1, 0] = error + 0.1 * rng.normal(size=N)  # the last token carries the error
    write_activation_cache(dirs["extract"] / ACTIVATIONS, tokens.reshape(-1, D), np.arange(N + 1) * TOKENS)
    codes = np.abs(rng.normal(size=(N, D_SAE))).astype(np.float32)
    codes[:, SIGNAL_FEATURE] = error + 0.1 * rng.normal(size=N)
    write_codes(dirs["codes"] / CODES, {"last": codes, "mean": codes})
    for role in ("extract", "codes"):
        examples.to_parquet(dirs[role] / EXAMPLES)
    return dirs


@pytest.fixture(scope="module")
def probe_node(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("probe")
    ctx = node_context("probe", PARAMS, root / "p00000000000", planted_parents(root / "parents"))
    probe.build(ctx)
    return ctx.out


def test_rungs_that_see_the_planted_signal_separate_the_difficult_examples(probe_node: Path) -> None:
    table = pd.read_parquet(probe_node / "probe.parquet")
    auroc = table[table["kind"] == "rung"].set_index("name")
    for rung in ("P2", "P3", "P4", "P5"):
        assert auroc.loc[rung, "value"] > 0.85, rung
    assert auroc.loc["P1", "ci_low"] < 0.5 < auroc.loc["P1", "ci_high"]  # cheap features are noise
    delta = table[table["kind"] == "delta"].set_index("name")
    assert delta.loc["P3-P1", "ci_low"] > 0  # adding the SAE block to the cheap one helps
    detail = read_json(probe_node / "probe.json")
    assert detail["block_widths"] == {"cheap": 2, "raw": D, "sae": D_SAE}
    assert detail["n_examples"] == N and detail["n_difficult"] == pytest.approx(N / 4, abs=12)


def test_scores_cover_every_example_and_the_top_feature_is_the_planted_one(probe_node: Path) -> None:
    scores = pd.read_parquet(probe_node / probe.SCORES)
    assert len(scores) == N and set(scores["id"]) == {f"ex-{i:04d}" for i in range(N)}  # cv: every example scored once
    assert {"P1", "P2", "P3", "P4", "P5", "y", "error"} <= set(scores.columns)
    assert probe.top_sae_features(probe_node, 1) == [SIGNAL_FEATURE]
    assert (probe_node / "ladder.png").read_bytes()[:4] == b"\x89PNG"


def test_codes_of_other_examples_are_refused(tmp_path: Path) -> None:
    parents = planted_parents(tmp_path / "parents")
    reordered = pd.read_parquet(parents["codes"] / EXAMPLES).iloc[::-1]
    reordered.to_parquet(parents["codes"] / EXAMPLES)
    with pytest.raises(InputError, match="example order differs"):
        probe.build(node_context("probe", PARAMS, tmp_path / "p00000000000", parents))
