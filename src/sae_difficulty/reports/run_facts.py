"""What a run did, as plain data for the manuscript's method and limitations sections.

Built from the resolved config and the plan (the node ids the config reaches) plus the
few counts only the nodes know (examples per split, windows dropped by the filters),
read from the ``tasks`` nodes' ``tasks.json``. Because every value here is either
hashed into a node id or read from a node, the method section cannot disagree with
what ran.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sae_difficulty.pipeline.consistency import backbone_layers
from sae_difficulty.pipeline.study import (
    MODALITIES,
    SIZES,
    StudyPlan,
    backbone_parameters,
    enabled_datasets,
)
from sae_difficulty.utils.io import read_json

TASKS_SUMMARY = "tasks.json"
BACKBONE_KEYS = ("d_model", "n_layers", "n_heads", "d_mlp", "d_ff", "context_length", "vocab_size", "n_tokens",
                 "train_steps", "prediction_length")  # fmt: skip


def _tasks_summary(store: Path, node_id: str, stage: str = "tasks") -> dict[str, Any]:
    path = store / stage / node_id / TASKS_SUMMARY
    return read_json(path) if path.is_file() else {}


def _backbone(plan: StudyPlan, modality: str, size: str) -> dict[str, Any]:
    node = plan.key(f"{modality}/{size}")
    params = node.params
    return {"node": node.id, "hub": params.get("hub"), "parameters": backbone_parameters(params),
            **{k: params[k] for k in BACKBONE_KEYS if params.get(k) is not None}}  # fmt: skip


def _dataset(plan: StudyPlan, store: Path, modality: str, dataset: str) -> dict[str, Any]:
    node = plan.key(f"{modality}/{dataset}/tasks")
    summary = _tasks_summary(store, node.id)
    params = node.params
    dropped = {k.removeprefix("n_dropped_"): v for k, v in summary.items() if k.startswith("n_dropped_")}
    return {
        "node": node.id, "hub": params.get("hub"), "source": summary.get("source", "hub" if params.get("hub") else "demo"),
        "n_examples": summary.get("n_examples", params.get("n_examples")), "n_train": summary.get("n_train"),
        "n_test": summary.get("n_test"), "cv_folds": params.get("cv_folds"), "dropped": dropped,
        **{k: params[k] for k in ("context_length", "horizon", "stride", "target", "train_fraction", "test_fraction") if k in params},
    }  # fmt: skip


def collect(plan: StudyPlan, config: dict[str, Any], store: str | Path) -> dict[str, Any]:
    """The facts of a run: models, layers, datasets and splits, SAEs, probe, causal and selective settings."""
    store = Path(store)
    modalities = {}
    for modality in MODALITIES:
        section = config[modality]
        if not section["enabled"]:
            continue
        modalities[modality] = {
            "primary_backbone": section["primary_backbone"],
            "backbones": {size: _backbone(plan, modality, size) for size in SIZES},
            "layers": backbone_layers(section),
            "datasets": {name: _dataset(plan, store, modality, name) for name in enabled_datasets(section)},
            "sae_activations": dict(section["sae_activations"]),
            "causal": dict(section["causal"]),
        }
    evals = sorted({node.stage for nodes in plan.evals.values() for node in nodes})
    return {
        "name": config["name"], "seed": config["seed"], "modalities": modalities,
        "disabled_modalities": [m for m in MODALITIES if not config[m]["enabled"]],
        "sae": dict(config["sae"]), "labels": dict(config["labels"]), "probe": dict(config["probe"]),
        "causal": dict(config["causal"]), "calibration": dict(config["calibration"]), "cascade": dict(config["cascade"]),
        "synthesis": dict(config["synthesis"]), "evals": evals, "modular": bool(plan.modular),
        "n_sweep_probes": len(plan.sweep_probes), "synthesis_node": plan.synthesis.id,
    }  # fmt: skip
