"""The modular-arithmetic stability study as store nodes (the third backbone family).

``modular_backbone`` (a transformer trained to grok (a + b) mod p) ->
``modular_activations`` (its residual stream at one layer, all p*p inputs, as an SAE
training cache) -> one ``sae`` node per (architecture, seed), trained by the project's
own SAE stage unchanged -> ``modular_stability`` (quality per SAE, PWMCC across seeds
against random dictionaries, Fourier recovery against random dictionaries).

``workflow.build_plan`` calls :func:`add_modular_nodes`; its stages' code versions are
:data:`MODULAR_STAGE_VERSIONS` (merged into ``workflow.STAGE_VERSIONS`` there, so this
module never imports ``workflow``).
"""

from __future__ import annotations

from typing import Any

from sae_difficulty.pipeline.plan import Node, Plan

MODULAR_STAGE_VERSIONS = {
    "modular_backbone": "1",
    "modular_activations": "1",
    "modular_stability": "2",
}

BACKBONE_KEYS = (
    "p", "train_fraction", "d_model", "n_heads", "n_layers", "d_mlp", "lr", "weight_decay", "train_steps",
    "eval_every", "stop_at_test_accuracy", "stop_window", "min_test_accuracy",
)  # fmt: skip
STABILITY_KEYS = ("n_random", "n_boot", "n_key_frequencies", "fourier_directions")
REPORT = "results/modular/stability.md"
REPORT_TABLE = "results/modular/stability.parquet"
REPORT_FIGURES = "results/modular/figures"


def sae_role(architecture: str, seed: int) -> str:
    """The stability node's parent role of one SAE, e.g. ``topk_s0``."""
    return f"{architecture}_s{seed}"


def modular_sae_key(layer: int, architecture: str, expansion: int, seed: int) -> str:
    """Plan key of a modular SAE, in the same ``<family>/L<layer>/<arch>-x<exp>-s<seed>`` shape as the others."""
    return f"modular/L{layer}/{architecture}-x{expansion}-s{seed}"


def sae_params(section: dict[str, Any], architecture: str, seed: int) -> dict[str, Any]:
    """Params of a modular SAE node, shaped like ``workflow.build_plan``'s SAE nodes (the ``sae`` rule trains it)."""
    return {
        "architecture": architecture, "expansion": section["expansion"], "seed": seed,
        "k": section["k"] if architecture != "relu" else None,
        "l1_coefficient": section["l1_coefficient"] if architecture == "relu" else None,
        "lr": section["sae_lr"], "training_tokens": section["sae_training_tokens"], "batch_size": section["sae_batch_size"],
    }  # fmt: skip


def add_modular_nodes(plan: Plan, config: dict[str, Any]) -> dict[str, Any]:
    """Declare the modular study's nodes on ``plan`` (a validated config); return its handles.

    Returns ``{}`` when ``modular.enabled`` is false, else ``backbone``, ``activations``,
    ``saes`` (``{(architecture, seed): Node}``), ``stability`` (the node the synthesis
    and the report read) and ``report`` (the view's output paths: ``markdown``,
    ``table``, ``figures``).
    """
    section = config["modular"]
    if not section["enabled"]:
        return {}
    seed = config["seed"]
    backbone = plan.add("modular_backbone", "modular/backbone",
                        {**{key: section[key] for key in BACKBONE_KEYS}, "seed": seed})  # fmt: skip
    layer = section["layer"]
    activations = plan.add("modular_activations", f"modular/L{layer}/activations", {"layer": layer},
                           {"backbone": backbone})  # fmt: skip
    saes: dict[tuple[str, int], Node] = {}
    for architecture in section["architectures"]:
        for sae_seed in section["seeds"]:
            key = modular_sae_key(layer, architecture, section["expansion"], sae_seed)
            saes[(architecture, sae_seed)] = plan.add("sae", key, sae_params(section, architecture, sae_seed),
                                                      {"activations": activations})  # fmt: skip
    described = [{"role": sae_role(a, s), "architecture": a, "seed": s} for (a, s) in saes]
    stability = plan.add(
        "modular_stability", f"modular/L{layer}/stability",
        {"seed": seed, "layer": layer, "expansion": section["expansion"], "saes": described,
         **{key: section[key] for key in STABILITY_KEYS}},
        {"backbone": backbone, "activations": activations, **{sae_role(a, s): node for (a, s), node in saes.items()}},
    )  # fmt: skip
    return {
        "backbone": backbone,
        "activations": activations,
        "saes": saes,
        "stability": stability,
        "report": {"markdown": REPORT, "table": REPORT_TABLE, "figures": REPORT_FIGURES},
    }
