"""Stage sae_quality: held-out reconstruction, sparsity, dead features and spliced loss, here of a
planted SAE that reconstructs exactly and has one feature that never fires."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import node_context

from sae_difficulty.stages import sae_quality

from .conftest import TinyStudy, save_identity_sae


@pytest.fixture(scope="module")
def quality_node(tsfm_study: TinyStudy, tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("quality")
    d = tsfm_study.params["backbone"]["d_model"]
    sae_dir = save_identity_sae(root / "sae", d)
    pool = {k: tsfm_study.params["sae_activations"][k] for k in ("synthetic_series", "synthetic_length", "heldout_fraction", "etth1")}
    params = {"modality": "tsfm", "layer": 1, "seed": 0, "min_explained_variance": 0.3,
              "spliced_loss": {"n_windows": 4, "num_samples": 4, **pool}}  # fmt: skip
    ctx = node_context("sae_quality", params, root / "q00000000000",
                       {"sae": sae_dir, "activations": tsfm_study.activations, "backbone": tsfm_study.backbone})  # fmt: skip
    sae_quality.build(ctx)
    return ctx.out


def test_an_exact_sae_explains_everything_and_splices_without_loss(quality_node: Path, tsfm_study: TinyStudy) -> None:
    detail = pd.read_json(quality_node / "quality.json", typ="series")
    d = tsfm_study.params["backbone"]["d_model"]
    assert detail["d_sae"] == 2 * d + 1
    assert detail["explained_variance"] == pytest.approx(1.0, abs=1e-5) and detail["passes_floor"]
    assert detail["min_explained_variance"] == pytest.approx(0.3)
    spliced = detail["spliced"]
    # splicing an exact reconstruction in leaves the forecast distribution (same seeds) unchanged
    assert spliced["crps_spliced"] == pytest.approx(spliced["crps_clean"], rel=1e-4)
    assert spliced["fraction_recovered"] == pytest.approx(1.0, abs=1e-3)


def test_feature_frequencies_show_the_dead_feature(quality_node: Path, tsfm_study: TinyStudy) -> None:
    d = tsfm_study.params["backbone"]["d_model"]
    table = pd.read_parquet(quality_node / "quality.parquet")
    assert list(table["feature"]) == list(range(2 * d + 1))
    assert table["frequency"].iloc[-1] == 0.0 and ((table["frequency"] >= 0) & (table["frequency"] <= 1)).all()
    # relu(x_i) and relu(-x_i) fire on complementary rows (a row with x_i = 0 fires neither)
    both = table["frequency"].to_numpy()[:d] + table["frequency"].to_numpy()[d : 2 * d]
    assert np.all(both <= 1.0 + 1e-9) and np.all(both > 0.99)
    assert (quality_node / "feature_frequency.png").read_bytes()[:4] == b"\x89PNG"
