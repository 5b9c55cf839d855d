"""Nodes shared by the stage tests, each built by its stage's ``build`` on a tiny store:
the small modular-addition model (``SMALL_BACKBONE``) and its activations; a tiny
time-series study on a planted CSV; and writers of planted SAE nodes."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import torch
from conftest import SMALL_BACKBONE, identity_sae, node_context

from sae_difficulty.pipeline.artifacts import SAE_DIR
from sae_difficulty.saes.training import SAETrainingSpec, make_training_sae, save_sae


@pytest.fixture(scope="session", autouse=True)
def _one_torch_thread() -> None:
    torch.set_num_threads(1)


@pytest.fixture(scope="session")
def grokked_backbone(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A ``modular_backbone`` node directory (model, training summary, curves) at p = 23."""
    from sae_difficulty.stages import modular_backbone

    ctx = node_context("modular_backbone", dict(SMALL_BACKBONE), tmp_path_factory.mktemp("store") / "aaaaaaaaaaaa")
    modular_backbone.build(ctx)
    return ctx.out


@pytest.fixture(scope="session")
def activations_node(grokked_backbone: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A ``modular_activations`` node directory at the last layer of the grokked model."""
    from sae_difficulty.stages import modular_activations

    ctx = node_context("modular_activations", {"layer": 1}, tmp_path_factory.mktemp("store") / "bbbbbbbbbbbb",
                       {"backbone": grokked_backbone})  # fmt: skip
    modular_activations.build(ctx)
    return ctx.out


# --- a tiny time-series study, built by the real stages in DAG order -------------------------

TSFM_CONTEXT, TSFM_HORIZON, TSFM_STRIDE = 32, 8, 8
TSFM_ROWS = 400  # hourly rows of the planted CSV: (400 - 32 - 8) / 8 + 1 = 46 windows
TSFM_BACKBONE = {
    "d_model": 16, "n_layers": 2, "n_heads": 2, "d_ff": 32, "d_kv": 8, "context_length": TSFM_CONTEXT,
    "prediction_length": TSFM_HORIZON, "n_tokens": 128, "train_steps": 40, "batch_size": 16, "lr": 1e-2,
    "heldout_windows": 32, "synthetic_series": 6, "synthetic_length": 96, "heldout_fraction": 0.25,
}  # fmt: skip
POOL_KEYS = ("synthetic_series", "synthetic_length", "heldout_fraction")  # read again by sae_activations / spliced loss


def write_series_csv(path: Path, n: int = TSFM_ROWS, seed: int = 0) -> Path:
    """An ETTh1-shaped CSV (date, OT): a daily cycle plus a random walk."""
    rng = np.random.default_rng(seed)
    t = np.arange(n)
    values = 20 + 4 * np.sin(2 * np.pi * t / 24) + np.cumsum(rng.normal(0, 0.4, n))
    dates = pd.date_range("2021-01-01", periods=n, freq="h").strftime("%Y-%m-%d %H:%M:%S")
    pd.DataFrame({"date": dates, "OT": values}).to_csv(path, index=False)
    return path


@dataclass(frozen=True)
class TinyStudy:
    """Node directories of one tiny TSFM study (every node built by its stage's ``build``)."""

    csv: Path
    params: dict[str, dict[str, Any]]
    tasks: Path
    backbone: Path
    evaluate: Path
    extract: Path
    activations: Path
    sae: Path
    codes: Path


@pytest.fixture(scope="session")
def tsfm_study(tmp_path_factory: pytest.TempPathFactory) -> TinyStudy:
    """tasks -> backbone -> evaluate / extract / sae_activations -> sae -> codes -> probe, about 10 s."""
    from sae_difficulty.stages import (
        backbone,
        codes,
        evaluate,
        extract,
        sae,
        sae_activations,
        tasks,
    )

    os.environ["HF_HUB_OFFLINE"] = "1"  # nothing may be downloaded
    store = tmp_path_factory.mktemp("tsfm_store")
    csv = write_series_csv(store / "series.csv")
    etth1 = {"path": str(csv), "sha256": None, "target": "OT", "train_fraction": 0.6}
    params = {
        "tasks": {"modality": "tsfm", "dataset": "etth1", "seed": 0, "context_length": TSFM_CONTEXT,
                  "horizon": TSFM_HORIZON, "stride": TSFM_STRIDE, "cv_folds": 3, "enabled": True, **etth1},
        "backbone": {"modality": "tsfm", "size": "small", "seed": 0, "hub": None, **TSFM_BACKBONE, "etth1": etth1},
        "evaluate": {"seed": 0, "num_samples": 8, "batch_size": 64},
        "extract": {"layer": 1, "batch_size": 32},
        "sae_activations": {"modality": "tsfm", "layer": 1, "seed": 0, "tokens": 2048, "heldout_tokens": 512,
                            "batch_size": 64, **{k: TSFM_BACKBONE[k] for k in POOL_KEYS}, "etth1": etth1},
        "sae": {"architecture": "topk", "expansion": 2, "seed": 0, "k": 4, "l1_coefficient": None, "lr": 0.003,
                "training_tokens": 8192, "batch_size": 128},
        "codes": {"min_explained_variance": 0.0},  # a 64-step SAE; test_codes checks the floor
    }  # fmt: skip
    nodes: dict[str, Path] = {}

    def build(module: Any, stage: str, parents: dict[str, str]) -> None:
        ctx = node_context(stage, params[stage], store / stage / f"{len(nodes):012d}",
                           {role: nodes[parent] for role, parent in parents.items()})  # fmt: skip
        module.build(ctx)
        nodes[stage] = ctx.out

    build(tasks, "tasks", {})
    build(backbone, "backbone", {})
    build(evaluate, "evaluate", {"backbone": "backbone", "tasks": "tasks"})
    build(extract, "extract", {"backbone": "backbone", "tasks": "tasks"})
    build(sae_activations, "sae_activations", {"backbone": "backbone"})
    build(sae, "sae", {"activations": "sae_activations"})
    build(codes, "codes", {"sae": "sae", "extract": "extract"})
    return TinyStudy(csv, params, nodes["tasks"], nodes["backbone"], nodes["evaluate"], nodes["extract"],
                     nodes["sae_activations"], nodes["sae"], nodes["codes"])  # fmt: skip


# --- planted SAEs ------------------------------------------------------------------------------


def save_identity_sae(node_dir: Path, d_in: int) -> Path:
    """An ``sae`` node holding :func:`conftest.identity_sae` (exact reconstruction, one dead feature)."""
    sae = identity_sae(d_in)
    (node_dir / SAE_DIR).mkdir(parents=True)
    sae.save_model(str(node_dir / SAE_DIR))
    return node_dir


def save_decoder_sae(node_dir: Path, decoder: np.ndarray, architecture: str = "relu") -> Path:
    """An ``sae`` node whose SAE has the given decoder rows ([d_sae, d_in]; the rest random-init)."""
    spec = SAETrainingSpec(architecture=architecture, expansion=decoder.shape[0] // decoder.shape[1], k=4)
    sae = make_training_sae(spec, decoder.shape[1])
    with torch.no_grad():
        sae.W_dec.copy_(torch.from_numpy(decoder).float())
    node_dir.mkdir(parents=True)
    save_sae(sae, node_dir / SAE_DIR)
    return node_dir


# --- a tiny language model, trained by the real backbone stage --------------------------------

LLM_CORPUS = {"code_chars": 20_000, "prose_chars": 60_000}
LLM_BACKBONE = {
    "modality": "llm", "size": "small", "seed": 0, "hub": None, "d_model": 32, "n_layers": 2, "n_heads": 2,
    "d_mlp": 64, "context_length": 64, "vocab_size": 512, "train_steps": 5, "batch_size": 4, "lr": 0.003,
    "warmup_steps": 1, "heldout_windows": 4, "weight_decay": 0.01, "rotary_pct": 0.25, "grad_clip": 1.0,
    "corpus": LLM_CORPUS,
}  # fmt: skip


@pytest.fixture(scope="session")
def llm_backbone(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An LLM ``backbone`` node (tokenizer + GPT-NeoX trained for 5 steps), about 5 s."""
    from sae_difficulty.stages import backbone

    os.environ["HF_HUB_OFFLINE"] = "1"
    ctx = node_context("backbone", dict(LLM_BACKBONE), tmp_path_factory.mktemp("llm_store") / "llmbackbone0")
    backbone.build(ctx)
    return ctx.out
