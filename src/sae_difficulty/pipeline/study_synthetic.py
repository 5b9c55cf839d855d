"""Exact ground truth for the SAE recipes, as store nodes: does stability across seeds predict recovery?

``synthetic_model`` (an sae-lens ``SyntheticModel``: true dictionary, Zipfian firing,
hierarchy, correlation) -> ``synthetic_activations`` (its samples as an SAE training
cache) -> one ``sae`` node per (recipe, L0, width, seed), trained by the project's own
``sae`` stage unchanged -> one ``eval_ground_truth`` node per SAE (MCC to the truth and
per-latent detail) -> ``ground_truth`` (per recipe cell: PWMCC across seeds against the
matched random baselines beside MCC to the truth, the per-feature stability-recovery
correlation, the precision of "stable" as a detector of "true", and the verdict).

The sweep is one-at-a-time around the primary (first) values: every recipe at the first
L0 setting and first width, then each other L0 setting at the first width and each other
width at the first L0 setting (``cells``). ``study.build_plan`` calls
:func:`add_synthetic_nodes`; its stages' versions are :data:`SYNTHETIC_STAGE_VERSIONS`.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

from sae_difficulty.pipeline.plan import Node, Plan
from sae_difficulty.utils.errors import InputError

SYNTHETIC_STAGE_VERSIONS = {
    "synthetic_model": "1",
    "synthetic_activations": "1",
    "eval_ground_truth": "1",
    "ground_truth": "1",
}
#: Stages whose nodes are ledger rows (each writes ``headline.json``).
SYNTHETIC_RESULT_STAGES = ("eval_ground_truth", "ground_truth")
REPORT = "results/ground_truth.md"
REPORT_TABLE = "results/ground_truth.parquet"
REPORT_FIGURES = "results/ground_truth"

#: SynthSAEBench-16k as published (sae-lens docs, "SynthSAEBench"; Chanin & Garriga-Alonso 2026):
#: the ``synthetic.model`` keys that reproduce it. ``bias`` is not stated there (sae-lens' default).
#: ``compensate_probabilities`` is not stated either: with it a sample has 34.6 active features
#: (measured, 4,096 samples), the published average L0 of about 34; without it, 13.5.
SYNTHSAEBENCH_16K: dict[str, Any] = {
    "num_features": 16384,
    "hidden_dim": 768,
    "firing": {"exponent": 0.5, "max_prob": 0.4, "min_prob": 0.0005},
    "hierarchy": {"enabled": True, "total_root_nodes": 128, "branching_factor": 4, "max_depth": 3,
                  "mutually_exclusive_portion": 1.0, "compensate_probabilities": True},
    "correlation": {"enabled": True, "rank": 25, "scale": 0.1},
    "orthogonalization": {"enabled": True, "num_steps": 100, "lr": 0.0003},
    "magnitudes": {"mean_start": 5.0, "mean_end": 4.0, "std_mean": 0.5, "std_std": 0.5},
    "bias": 1.0,
}  # fmt: skip
PRESETS = {"synthsaebench-16k": SYNTHSAEBENCH_16K}
#: The L0 range the published MCC was read at (TopK-style k within it counts as matched).
PUBLISHED_L0_RANGE = (20, 30)


@dataclass(frozen=True)
class Cell:
    """One recipe setting of the sweep: architecture, width and L0 setting (k or the L1 coefficient)."""

    architecture: str
    expansion: int
    k: int | None
    l1_coefficient: float | None

    @property
    def name(self) -> str:
        sparsity = f"k{self.k}" if self.k is not None else f"l1_{self.l1_coefficient:g}"
        return f"{self.architecture}-x{self.expansion}-{sparsity}"

    @property
    def l0_setting(self) -> str:
        return f"k={self.k}" if self.k is not None else f"l1={self.l1_coefficient:g}"


def model_params(section: dict[str, Any], seed: int) -> dict[str, Any]:
    """The ``synthetic_model`` node's params: the preset's keys or ``synthetic.model``, a disabled part as null."""
    preset = section.get("preset") or "none"
    if preset != "none" and preset not in PRESETS:
        raise InputError(f"synthetic.preset: expected none or one of {sorted(PRESETS)}, got {preset!r}")
    model = copy.deepcopy(PRESETS[preset] if preset != "none" else section["model"])
    params: dict[str, Any] = {key: model[key] for key in ("num_features", "hidden_dim", "firing", "magnitudes", "bias")}
    for part in ("hierarchy", "correlation", "orthogonalization"):
        settings = dict(model[part])
        params[part] = {k: v for k, v in settings.items() if k != "enabled"} if settings.pop("enabled") else None
    params["seed"] = seed
    return params


def sweep_cells(saes: dict[str, Any]) -> list[Cell]:
    """The one-at-a-time sweep around the first L0 setting and the first width, per architecture."""
    cells: list[Cell] = []
    for architecture in saes["architectures"]:
        settings = saes["l1_coefficient"] if architecture == "relu" else saes["k"]

        def cell(expansion: int, setting: Any, architecture: str = architecture) -> Cell:
            if architecture == "relu":
                return Cell(architecture, int(expansion), None, float(setting))
            return Cell(architecture, int(expansion), int(setting), None)

        cells.append(cell(saes["expansions"][0], settings[0]))
        cells += [cell(saes["expansions"][0], setting) for setting in settings[1:]]
        cells += [cell(expansion, settings[0]) for expansion in saes["expansions"][1:]]
    return cells


def sae_params(saes: dict[str, Any], cell: Cell, seed: int) -> dict[str, Any]:
    """Params of one synthetic SAE node, shaped like the study's SAE nodes (the ``sae`` rule trains it)."""
    return {"architecture": cell.architecture, "expansion": cell.expansion, "seed": seed, "k": cell.k,
            "l1_coefficient": cell.l1_coefficient, "lr": saes["lr"], "training_tokens": saes["training_tokens"],
            "batch_size": saes["batch_size"]}  # fmt: skip


def published_match(model: dict[str, Any], cell: Cell) -> dict[str, Any]:
    """Whether the SynthSAEBench claim covers an SAE of ``cell`` on ``model`` (a ``synthetic_model``'s params):
    the model's settings are SynthSAEBench-16k's (any seed) and the SAE is TopK-style with k in the
    published L0 range. ``reason`` says which condition failed (or what still differs when matched)."""
    reference = model_params({"preset": "synthsaebench-16k"}, model.get("seed", 0))
    if {k: v for k, v in model.items() if k != "seed"} != {k: v for k, v in reference.items() if k != "seed"}:
        return {"settings_match": False, "reason": "synthetic model differs from SynthSAEBench-16k"}
    low, high = PUBLISHED_L0_RANGE
    if cell.k is None or not low <= cell.k <= high:
        return {"settings_match": False, "reason": f"L0 setting {cell.l0_setting} outside the published k range {low}-{high}"}
    return {"settings_match": True, "reason": "SynthSAEBench-16k settings and k in the published range (a fresh draw of "
            "the model from its config, a finite training cache, width = expansion x 768)"}


def role(kind: str, cell: Cell, seed: int) -> str:
    """The answer node's parent role of one SAE (``sae``) or its evaluation (``eval``)."""
    return f"{kind}__{cell.name}__s{seed}"


def add_synthetic_nodes(plan: Plan, config: dict[str, Any]) -> dict[str, Any]:
    """Declare the ground-truth study's nodes on ``plan`` (a validated config); return its handles.

    ``{}`` when ``synthetic.enabled`` is false; else ``model``, ``activations``, ``saes``
    (``{(cell name, seed): Node}``), ``evals`` (same keys), ``answer`` (the node the report,
    the synthesis and the ledger read) and ``report`` (the view's paths).
    """
    section = config["synthetic"]
    if not section["enabled"]:
        return {}
    seed, saes_cfg = config["seed"], section["saes"]
    model_spec = model_params(section, seed)
    model = plan.add("synthetic_model", "synthetic/model", model_spec)
    activations = plan.add("synthetic_activations", "synthetic/activations", {**section["activations"], "seed": seed},
                           {"model": model})  # fmt: skip
    evaluation = config["sae_evals"]["ground_truth"]
    saes: dict[tuple[str, int], Node] = {}
    evals: dict[tuple[str, int], Node] = {}
    parents: dict[str, Node] = {"model": model, "activations": activations}
    described = []
    for cell in sweep_cells(saes_cfg):
        for sae_seed in saes_cfg["seeds"]:
            sae = plan.add("sae", f"synthetic/{cell.name}-s{sae_seed}", sae_params(saes_cfg, cell, sae_seed),
                           {"activations": activations})  # fmt: skip
            saes[(cell.name, sae_seed)] = sae
            evals[(cell.name, sae_seed)] = plan.add(
                "eval_ground_truth", f"synthetic/{cell.name}-s{sae_seed}/ground_truth",
                {**evaluation, "cell": cell.name, "architecture": cell.architecture, "expansion": cell.expansion,
                 "k": cell.k, "l1_coefficient": cell.l1_coefficient, "published": published_match(model_spec, cell)},
                {"sae": sae, "model": model},
            )  # fmt: skip
            parents[role("sae", cell, sae_seed)] = sae
            parents[role("eval", cell, sae_seed)] = evals[(cell.name, sae_seed)]
        described.append({"cell": cell.name, "architecture": cell.architecture, "expansion": cell.expansion,
                          "k": cell.k, "l1_coefficient": cell.l1_coefficient, "l0_setting": cell.l0_setting,
                          "seeds": list(saes_cfg["seeds"])})  # fmt: skip
    answer = plan.add(
        "ground_truth", "synthetic/ground_truth",
        {"seed": seed, "cells": described, **section["answer"], "training_tokens": saes_cfg["training_tokens"],
         "num_features": model_spec["num_features"], "hidden_dim": model_spec["hidden_dim"],
         "preset": section.get("preset") or "none"},
        parents,
    )  # fmt: skip
    return {"model": model, "activations": activations, "saes": saes, "evals": evals, "answer": answer,
            "report": {"markdown": REPORT, "table": REPORT_TABLE, "figures": REPORT_FIGURES}}  # fmt: skip
