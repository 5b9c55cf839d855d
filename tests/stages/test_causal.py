"""Stage causal: ablating the probe's top SAE features in the reconstruction, on test examples only,
beside frequency-matched random sets. The probe node is planted: its P5 weights put features 5 and 9 on top."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import node_context

from sae_difficulty.stages import causal
from sae_difficulty.stages.probe import COEFFICIENTS
from sae_difficulty.utils.io import read_json, write_json

from .conftest import TinyStudy

PARAMS = {"seed": 0, "n_random_sets": 2, "n_features": 2, "alpha": 0.05, "correction": "holm", "max_examples": 6,
          "num_samples": 4, "crn": True, "min_explained_variance": 0.0, "layer": 1}  # fmt: skip


TOP_FEATURES = [9, 5]  # by |P5 weight|


def planted_probe(directory: Path, d_sae: int) -> Path:
    weights = np.full(d_sae, 0.01)
    weights[TOP_FEATURES] = [-2.0, 1.5]  # the sign does not matter, the size does
    rows = [{"rung": "P5", "position": i, "coefficient": w} for i, w in enumerate(weights)]
    rows += [{"rung": "P4", "position": 0, "coefficient": 9.0}]  # another rung's weights are not SAE features
    directory.mkdir(parents=True)
    pd.DataFrame(rows).to_parquet(directory / COEFFICIENTS)
    write_json(directory / "probe.json", {"pooling": "last", "sae_width": d_sae, "filters": {"filters": {}}})
    return directory


@pytest.fixture(scope="module")
def causal_node(tsfm_study: TinyStudy, tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("causal")
    d_sae = tsfm_study.params["sae"]["expansion"] * tsfm_study.params["backbone"]["d_model"]
    parents = {"backbone": tsfm_study.backbone, "tasks": tsfm_study.tasks, "sae": tsfm_study.sae,
               "probe": planted_probe(root / "probe", d_sae), "activations": tsfm_study.activations}  # fmt: skip
    ctx = node_context("causal", PARAMS, root / "k00000000000", parents)
    causal.build(ctx)
    return ctx.out


def test_the_probe_top_features_and_matched_random_sets_are_patched(causal_node: Path, tsfm_study: TinyStudy) -> None:
    detail = read_json(causal_node / "causal.json")
    top = TOP_FEATURES
    assert detail["features"] == top
    assert len(detail["random_sets"]) == PARAMS["n_random_sets"]
    for random_set in detail["random_sets"]:
        assert len(random_set) == len(top) and not set(random_set) & set(top)
    deltas = pd.read_parquet(causal_node / "deltas.parquet")
    patched = set(top) | {f for s in detail["random_sets"] for f in s}
    assert set(deltas["feature"]) == patched and set(deltas["positions"]) == {"last", "all"}
    # the effect of a feature is the change of the loss when it is ablated from the reconstruction
    np.testing.assert_allclose(deltas["delta"], deltas["crps_ablated"] - deltas["crps_recon"], rtol=1e-9, atol=1e-9)


def test_only_test_examples_are_patched(causal_node: Path, tsfm_study: TinyStudy) -> None:
    examples = pd.read_parquet(tsfm_study.tasks / "examples.parquet")
    deltas = pd.read_parquet(causal_node / "deltas.parquet")
    test_ids = set(examples.loc[examples["split"] == "test", "id"])
    assert set(deltas["id"]) <= test_ids and deltas["id"].nunique() == PARAMS["max_examples"]
    detail = read_json(causal_node / "causal.json")
    for positions in ("last", "all"):
        summary = detail["by_positions"][positions]
        assert summary["n_examples"] == PARAMS["max_examples"] and summary["n_features"] == PARAMS["n_features"]
        assert 0 <= summary["n_significant"] <= PARAMS["n_features"]
        assert summary["control"]["n_sets"] == PARAMS["n_random_sets"]
    assert (causal_node / "causal_effects.png").read_bytes()[:4] == b"\x89PNG"
