"""A small modular-addition model grokked once per session, built by the real backbone stage.

p = 23 with a wide train fraction and a high learning rate groks in about a thousand
full-batch steps of a 2-layer, 32-wide model: seconds on one thread.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch

from sae_difficulty.pipeline.runner import NodeContext

SMALL_P = 23
SMALL_BACKBONE = {
    "p": SMALL_P, "train_fraction": 0.7, "d_model": 32, "n_heads": 2, "n_layers": 2, "d_mlp": 64, "lr": 0.01,
    "weight_decay": 1.0, "train_steps": 1500, "eval_every": 50, "stop_at_test_accuracy": 1.0, "stop_window": 100,
    "min_test_accuracy": 1.0, "seed": 0,
}  # fmt: skip


@pytest.fixture(scope="session", autouse=True)
def _one_torch_thread() -> None:
    torch.set_num_threads(1)


def node_context(stage: str, params: dict[str, Any], out: Path, parents: dict[str, Path] | None = None) -> NodeContext:
    """What ``run_node`` hands a stage's ``build``, without Snakemake or the store."""
    out.mkdir(parents=True)
    spec = {"stage": stage, "version": "1", "params": params, "parents": {}}
    return NodeContext(spec, dict(parents or {}), out, {}, out.name)


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
