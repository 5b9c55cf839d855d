"""The stability stage on the grokked p = 23 model and planted SAEs, and the `sae` stage on the modular cache.

Planted SAEs: the two "topk" seeds hold the model's exact Fourier readout directions
(W_U c_k of its key frequencies) among shared random rows, in different orders, so
their PWMCC is 1 and their Fourier overlap is 1; the two "relu" seeds are random
dictionaries, so they must sit on the random controls.
"""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
import torch
from conftest import SMALL_P, node_context

from sae_difficulty.core import fourier
from sae_difficulty.core.sae_metrics import expected_random_max_cosine
from sae_difficulty.modalities.modular import model as modular
from sae_difficulty.pipeline.artifacts import MODEL_DIR, SAE_DIR
from sae_difficulty.pipeline.study_modular import sae_params, sae_role
from sae_difficulty.reports.modular_report import synthesis_rows
from sae_difficulty.reports.views import publish_modular
from sae_difficulty.saes.loading import load_sae
from sae_difficulty.saes.training import SAETrainingSpec, make_training_sae, save_sae
from sae_difficulty.stages import modular_stability
from sae_difficulty.stages import sae as sae_stage
from sae_difficulty.utils.io import read_json

D_MODEL = 32
EXPANSION = 4
N_KEYS = 3


def _save_planted_sae(root: Path, architecture: str, decoder: np.ndarray) -> Path:
    sae = make_training_sae(SAETrainingSpec(architecture=architecture, expansion=EXPANSION, k=4), D_MODEL)
    with torch.no_grad():
        sae.W_dec.copy_(torch.from_numpy(decoder).float())
    root.mkdir(parents=True)
    save_sae(sae, root / SAE_DIR)
    return root


@pytest.fixture(scope="module")
def planted_saes(grokked_backbone: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    model, _ = modular.load_model(grokked_backbone / MODEL_DIR)
    keys = fourier.key_frequencies(modular.number_embeddings(model, SMALL_P), SMALL_P, N_KEYS)
    truth = fourier.token_directions(modular.unembedding(model).T, SMALL_P, keys)
    rng = np.random.default_rng(0)
    shared = np.vstack([truth, rng.standard_normal((EXPANSION * D_MODEL - len(truth), D_MODEL))])
    root = tmp_path_factory.mktemp("saes")
    saes = {}
    for seed in (0, 1):
        saes[sae_role("topk", seed)] = _save_planted_sae(root / f"topk{seed}", "topk", shared[rng.permutation(len(shared))])
        random_rows = rng.standard_normal((EXPANSION * D_MODEL, D_MODEL))
        saes[sae_role("relu", seed)] = _save_planted_sae(root / f"relu{seed}", "relu", random_rows)
    return saes


@pytest.fixture(scope="module")
def stability_node(grokked_backbone: Path, activations_node: Path, planted_saes: dict[str, Path],
                   tmp_path_factory: pytest.TempPathFactory) -> Path:  # fmt: skip
    params = {"seed": 0, "layer": 1, "expansion": EXPANSION, "n_random": 3, "n_boot": 200, "n_key_frequencies": N_KEYS,
              "fourier_directions": "unembed",
              "saes": [{"role": sae_role(a, s), "architecture": a, "seed": s} for a in ("topk", "relu") for s in (0, 1)]}  # fmt: skip
    ctx = node_context("modular_stability", params, tmp_path_factory.mktemp("store") / "cccccccccccc",
                       {"backbone": grokked_backbone, "activations": activations_node, **planted_saes})  # fmt: skip
    modular_stability.build(ctx)
    return ctx.out


def test_planted_stable_saes_beat_the_random_controls_and_random_ones_do_not(stability_node: Path) -> None:
    table = pd.read_parquet(stability_node / "stability.parquet").set_index("architecture")
    stable, unstable = table.loc["topk"], table.loc["relu"]
    assert stable["pwmcc_mean"] == pytest.approx(1.0, abs=1e-6)
    assert stable["fourier_overlap_mean"] == pytest.approx(1.0, abs=1e-6)
    expected = expected_random_max_cosine(EXPANSION * D_MODEL, D_MODEL)
    assert unstable["pwmcc_mean"] == pytest.approx(expected, abs=0.05)
    for kind in ("gaussian", "shuffled"):
        assert stable[f"pwmcc_{kind}"] == pytest.approx(expected, abs=0.05)
        assert stable[f"pwmcc_gap_{kind}"] > 0.3 and stable[f"fourier_gap_{kind}_ci_low"] > 0.2
        assert abs(unstable[f"fourier_gap_{kind}"]) < 0.1
    closed = fourier.expected_random_max_abs_cosine(EXPANSION * D_MODEL, D_MODEL)
    assert unstable["fourier_overlap_mean"] == pytest.approx(closed, abs=0.1)


def test_stability_node_reports_quality_key_frequencies_and_figures(stability_node: Path, activations_node: Path) -> None:
    detail = read_json(stability_node / "stability.json")
    saes = pd.read_parquet(stability_node / "saes.parquet")
    assert sorted(saes["role"]) == ["relu_s0", "relu_s1", "topk_s0", "topk_s1"]
    assert saes["dead_fraction"].between(0, 1).all() and (saes["l0"] >= 0).all()
    keys = detail["fourier"]["key_frequencies"]
    assert len(keys) == N_KEYS and detail["fourier"]["key_share"] > 0.5  # a grokked model is sparse in Fourier space
    assert set(detail["fourier"]["overlap_by_directions"]) == {"unembed", "embed", "activations"}
    assert len(pd.read_parquet(stability_node / "pairs.parquet")) == 2
    report = (stability_node / "stability.md").read_text()
    assert "| topk | 2 |" in report and "| relu | 2 |" in report and "Key frequencies" in report
    for name in ("training_curves.png", "fourier_spectrum.png", "pwmcc_matrices.png", "against_controls.png"):
        assert (stability_node / "figures" / name).read_bytes()[:4] == b"\x89PNG"
        assert f"figures/{name}" in report
    rows = synthesis_rows(stability_node)
    assert list(rows["sae"]) == ["relu x4", "topk x4"] and (rows["modality"] == "modular").all()
    assert rows.set_index("sae").loc["topk x4", "pwmcc"] == pytest.approx(1.0, abs=1e-6)
    assert (rows["stability_node"] == stability_node.name).all()


def test_publish_copies_the_report(stability_node: Path, tmp_path: Path) -> None:
    outputs = SimpleNamespace(markdown=tmp_path / "stability.md", table=tmp_path / "stability.parquet",
                              figures=tmp_path / "figures")  # fmt: skip
    publish_modular(SimpleNamespace(input=SimpleNamespace(stability=stability_node / "manifest.json"), output=outputs))
    assert outputs.markdown.read_text() == (stability_node / "stability.md").read_text()
    assert (outputs.figures / "pwmcc_matrices.png").is_file()


def test_the_sae_stage_trains_on_the_modular_cache(activations_node: Path, tmp_path: Path) -> None:
    section = {"expansion": 2, "k": 4, "l1_coefficient": 0.5, "sae_lr": 0.003, "sae_training_tokens": 2048,
               "sae_batch_size": 128}  # fmt: skip
    ctx = node_context("sae", sae_params(section, "topk", 0), tmp_path / "dddddddddddd", {"activations": activations_node})
    sae_stage.build(ctx)
    sae = load_sae(ctx.out / SAE_DIR, expected_d_in=D_MODEL)
    assert sae.cfg.d_sae == 2 * D_MODEL and read_json(ctx.out / "training.json")["n_steps"] == 16
