"""The synthetic ground-truth study's stages on a tiny store, in DAG order: synthetic model ->
activations (the SAE training cache) -> the project's `sae` stage unchanged -> one evaluation per
SAE -> the answer, its report, figures, ledger line and synthesis rows."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
from conftest import node_context

from sae_difficulty.core.ground_truth import verdict_words
from sae_difficulty.evals.base import Headline
from sae_difficulty.pipeline.outputs import declared_outputs
from sae_difficulty.pipeline.study_synthetic import (
    Cell,
    published_match,
    role,
    sae_params,
)
from sae_difficulty.reports import ground_truth_report, views
from sae_difficulty.reports.ledger import ledger_status, node_headline
from sae_difficulty.reports.synthesis import Footnotes, frame_markdown
from sae_difficulty.saes.cache import open_training_cache
from sae_difficulty.stages import (
    eval_ground_truth,
    ground_truth,
    synthetic_activations,
    synthetic_model,
)
from sae_difficulty.stages import sae as sae_stage
from sae_difficulty.utils.io import read_json

MODEL = {
    "num_features": 32, "hidden_dim": 8, "firing": {"exponent": 0.5, "max_prob": 0.4, "min_prob": 0.01},
    "hierarchy": {"total_root_nodes": 2, "branching_factor": 2, "max_depth": 1, "mutually_exclusive_portion": 1.0,
                  "compensate_probabilities": False},
    "correlation": {"rank": 2, "scale": 0.1}, "orthogonalization": None,
    "magnitudes": {"mean_start": 5.0, "mean_end": 4.0, "std_mean": 0.5, "std_std": 0.5}, "bias": 1.0, "seed": 0,
}  # fmt: skip
SAES = {"lr": 0.003, "training_tokens": 8192, "batch_size": 256}
EVALUATION = {"n_samples": 2048, "batch_size": 1024, "dense_threshold": 0.5, "match_threshold": 0.9, "n_random": 2,
              "n_boot": 100, "seed": 0}  # fmt: skip
ANSWER = {"stable_threshold": 0.9, "true_threshold": 0.9, "equivalence_margin": 0.1, "n_random": 2, "n_boot": 100}
CELLS = (Cell("topk", 4, 4, None), Cell("relu", 4, None, 1.0))
SEEDS = (0, 1, 2)


@pytest.fixture(scope="module")
def study(tmp_path_factory: pytest.TempPathFactory) -> SimpleNamespace:
    store = tmp_path_factory.mktemp("store")
    model = node_context("synthetic_model", MODEL, store / "synthetic_model" / "a00000000000")
    synthetic_model.build(model)
    acts = node_context("synthetic_activations", {"train_rows": 4096, "heldout_rows": 1024, "seed": 0},
                        store / "synthetic_activations" / "b00000000000", {"model": model.out})  # fmt: skip
    synthetic_activations.build(acts)
    parents = {"model": model.out, "activations": acts.out}
    described = []
    for number, cell in enumerate(CELLS):
        for seed in SEEDS:
            sae = node_context("sae", sae_params({**SAES}, cell, seed), store / "sae" / f"c{number}{seed}0000000000",
                               {"activations": acts.out})  # fmt: skip
            sae_stage.build(sae)
            evaluation = node_context(
                "eval_ground_truth", {**EVALUATION, "cell": cell.name, "architecture": cell.architecture,
                                      "expansion": cell.expansion, "k": cell.k, "l1_coefficient": cell.l1_coefficient,
                                      "published": published_match(MODEL, cell)},
                store / "eval_ground_truth" / f"d{number}{seed}0000000000", {"sae": sae.out, "model": model.out})  # fmt: skip
            eval_ground_truth.build(evaluation)
            parents[role("sae", cell, seed)] = sae.out
            parents[role("eval", cell, seed)] = evaluation.out
        described.append({"cell": cell.name, "architecture": cell.architecture, "expansion": cell.expansion, "k": cell.k,
                          "l1_coefficient": cell.l1_coefficient, "l0_setting": cell.l0_setting, "seeds": list(SEEDS)})  # fmt: skip
    answer = node_context("ground_truth", {"seed": 0, "cells": described, **ANSWER, "training_tokens": SAES["training_tokens"],
                                           "num_features": 32, "hidden_dim": 8, "preset": "none"},
                          store / "ground_truth" / "e00000000000", parents)  # fmt: skip
    ground_truth.build(answer)
    return SimpleNamespace(model=model.out, activations=acts.out, parents=parents, answer=answer.out)


def test_every_node_holds_its_declared_files(study: SimpleNamespace):
    assert declared_outputs("synthetic_model").missing(study.model) == []
    assert declared_outputs("synthetic_activations").missing(study.activations) == []
    assert declared_outputs("eval_ground_truth").missing(study.parents[role("eval", CELLS[0], 0)]) == []
    assert declared_outputs("ground_truth").missing(study.answer) == []


def test_the_activations_are_the_sae_training_cache_and_the_true_l0_is_recorded(study: SimpleNamespace):
    cache = open_training_cache(study.activations / "activations.zarr")
    assert cache.train.shape == (4096, 8) and cache.heldout.shape == (1024, 8)
    summary = read_json(study.activations / "synthetic_activations.json")
    assert 0 < summary["train"]["true_l0"] < 32
    # train and held-out rows are different draws
    assert not np.allclose(np.asarray(cache.train[:16]), np.asarray(cache.heldout[:16]))


def test_each_evaluation_scores_its_sae_against_the_truth(study: SimpleNamespace):
    for cell in CELLS:
        document = read_json(study.parents[role("eval", cell, 0)] / "ground_truth.json")
        assert document["num_true_features"] == 32 and document["hidden_dim"] == 8 and document["n_latents"] == 32
        assert document["training_tokens"] == SAES["training_tokens"]
        assert not document["published"]["settings_match"]
        headline = read_json(study.parents[role("eval", cell, 0)] / "headline.json")
        assert headline["claim_sign"] == 0 and headline["null"] == pytest.approx(document["random_mcc"])
        table = pd.read_parquet(study.parents[role("eval", cell, 0)] / "ground_truth.parquet")
        assert len(table) == 32 and table["best_cosine"].between(0, 1 + 1e-9).all()


def test_the_answer_reports_every_cell_with_its_setting_and_a_verdict_in_its_four_words(study: SimpleNamespace):
    detail = read_json(study.answer / "answer.json")
    assert detail["verdict"] in verdict_words(0.1)
    assert [row["cell"] for row in detail["cells"]] == [cell.name for cell in CELLS]
    for row in detail["cells"]:
        assert row["mcc_ci_low"] <= row["mcc"] <= row["mcc_ci_high"]
        assert row["pwmcc_ci_low"] <= row["pwmcc"] <= row["pwmcc_ci_high"]
        assert row["verdict"] in verdict_words(0.1)
    settings = detail["settings"]
    assert (settings["num_features"], settings["hidden_dim"], settings["training_tokens"]) == (32, 8, 8192)
    report = (study.answer / "ground_truth.md").read_text()
    assert "32 true features in hidden size 8" in report and "8,192 tokens" in report and detail["verdict"] in report
    Headline.check({k: v for k, v in read_json(study.answer / "headline.json").items() if k != "claim_sign"})
    features = pd.read_parquet(study.answer / "features.parquet")
    assert len(features) == len(CELLS) * len(SEEDS) * 32
    # a stable feature agrees with every other seed
    assert (features.loc[features["stable"], "worst_other_seed_match"] >= 0.9).all()


def test_the_views_copy_the_report_and_the_synthesis_gets_one_row_per_cell(study: SimpleNamespace, tmp_path: Path):
    rows = ground_truth_report.synthesis_rows(study.answer)
    assert len(rows) == len(CELLS) and set(rows["ground_truth_node"]) == {study.answer.name}
    assert rows["setting"].str.contains("32 in d8").all()
    notes = Footnotes()
    lines = frame_markdown(rows, notes, {"ground_truth_node": "ground_truth"})
    assert len(lines) == 2 + len(CELLS) and any(study.answer.name in line for line in notes.lines())
    assert "most stable cell" in (study.answer / "ground_truth.md").read_text()
    output = SimpleNamespace(markdown=tmp_path / "gt.md", table=tmp_path / "gt.parquet", figures=tmp_path / "gt")
    views.publish_ground_truth(SimpleNamespace(input=SimpleNamespace(answer=study.answer / "manifest.json"), output=output))
    assert sorted(p.name for p in output.figures.iterdir()) == ["mcc_vs_l0.png", "stability_vs_recovery.png"]
    assert "](gt/mcc_vs_l0.png)" in output.markdown.read_text()  # the links point at the published figures


def test_the_ledger_reads_a_headline_from_every_result_node(study: SimpleNamespace):
    for stage, directory in (("eval_ground_truth", study.parents[role("eval", CELLS[0], 0)]), ("ground_truth", study.answer)):
        line = node_headline(stage, directory)
        assert line["claim_sign"] == 0 and line["claim"] == ""
        # no published claim covers these settings: never "reproduced"
        assert ledger_status(line["value"], line["ci_low"], line["ci_high"], line["null"], 0) in ("novel", "inconclusive")
