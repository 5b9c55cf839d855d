"""The SAE evaluation suite as store nodes (issue: SAEs beyond difficulty).

On the primary LM backbone, at one layer (``sae_evals.layer``, default the first of
``llm.layers``):

``domain_activations`` (prose-only and code-only residuals, an SAE training cache
plus the held-out token windows) -> one ``sae`` node per (domain, architecture),
trained by the project's ``sae`` stage unchanged -> ``eval_cross_domain``;
``eval_sparse_probing`` (the study's primary SAE on window-level tasks and the demo
tasks' difficulty labels); ``eval_transcoder`` (SAE vs skip-transcoder on the MLP);
``eval_steering`` (SAE decoder direction vs diff-of-means); ``eval_circuit``
(faithfulness of top-K attributed features at every ``llm.layers`` layer);
``eval_meta_structure`` (a meta-SAE on the primary SAE's decoder rows vs random rows);
``eval_external`` per configured external SAE. ``workflow.build_plan`` calls
:func:`add_eval_nodes`; the ledger (``results/ledger.md``) reads every result node.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

from sae_difficulty.pipeline.consistency import backbone_layers, sae_expansions
from sae_difficulty.pipeline.plan import Node, Plan
from sae_difficulty.pipeline.store import sha256_file
from sae_difficulty.utils.errors import InputError

EVAL_STAGE_VERSIONS = {
    "domain_activations": "1",
    "eval_cross_domain": "1",
    "eval_sparse_probing": "1",
    "eval_transcoder": "1",
    "eval_steering": "1",
    "eval_circuit": "1",
    "eval_meta_structure": "1",
    "eval_external": "1",
}
DOMAINS = ("prose", "code")
EVAL_STAGES = tuple(stage for stage in EVAL_STAGE_VERSIONS if stage.startswith("eval_"))
#: Section titles of ``results/sae_evals.md``, one per evaluation stage, in report order.
EVAL_TITLES = {
    "eval_cross_domain": "Cross-domain generalization (prose- vs code-trained SAEs)",
    "eval_sparse_probing": "Sparse probing (top-k SAE latents vs top-k residual dimensions)",
    "eval_transcoder": "SAE vs skip-transcoder (same MLP, recipe and token budget)",
    "eval_steering": "Steering towards code: SAE feature vs diff-of-means, at matched fluency",
    "eval_circuit": "Feature-circuit faithfulness: top-K attributed features vs random K",
    "eval_meta_structure": "Meta-structure: a small meta-SAE on the decoder rows vs on random directions",
    "eval_external": "External SAEs",
}


def domain_sae_role(domain: str, architecture: str) -> str:
    """The cross-domain node's parent role of one domain SAE, e.g. ``sae_code_topk``."""
    return f"sae_{domain}_{architecture}"


def eval_layer(config: dict[str, Any]) -> int:
    """The layer the suite evaluates, checked against the LM layers the study extracts."""
    section, layers = config["sae_evals"], backbone_layers(config["llm"])
    layer = layers[0] if section["layer"] is None else section["layer"]
    if layer not in layers:
        raise InputError(f"sae_evals.layer={layer} is not one of llm.layers {layers}; the suite reuses the study's SAEs there")
    return int(layer)


def add_eval_nodes(plan: Plan, config: dict[str, Any], llm: dict[str, Any]) -> dict[str, Any]:
    """Declare the suite's nodes on ``plan``; return ``{stage: [nodes]}`` ({} when disabled).

    ``llm`` holds the LM handles ``build_plan`` made: ``backbone`` (primary),
    ``sae`` (``{layer: primary SAE node}``) and ``datasets`` (``{dataset: {layer:
    {"evaluate", "extract", "codes"}}}`` for the primary SAE).
    """
    section = config["sae_evals"]
    if not section["enabled"] or "backbone" not in llm:
        return {}
    seed, sae_cfg = config["seed"], config["sae"]
    layer = eval_layer(config)
    backbone = llm["backbone"]
    primary_sae = llm["sae"][layer]
    corpus = {"corpus": config["llm"]["corpus"]}
    activations = {
        domain: plan.add("domain_activations", f"evals/L{layer}/{domain}/activations",
                         {"layer": layer, "domain": domain, "seed": seed, **section["domains"], **corpus},
                         {"backbone": backbone})
        for domain in DOMAINS
    }  # fmt: skip
    acts = {f"acts_{domain}": node for domain, node in activations.items()}
    domain_saes: dict[str, Node] = {}
    for domain, acts_node in activations.items():
        for architecture in section["architectures"]:
            spec = {
                "architecture": architecture, "expansion": sae_expansions(sae_cfg, "llm")[0], "seed": sae_cfg["seeds"][0],
                "k": sae_cfg["k"] if architecture != "relu" else None,
                "l1_coefficient": sae_cfg["l1_coefficient"] if architecture == "relu" else None,
                "lr": sae_cfg["lr"], "training_tokens": sae_cfg["training_tokens"], "batch_size": sae_cfg["batch_size"],
            }  # fmt: skip
            key = f"evals/L{layer}/{domain}/{architecture}-x{spec['expansion']}-s{spec['seed']}"
            domain_saes[domain_sae_role(domain, architecture)] = plan.add("sae", key, spec, {"activations": acts_node})
    fidelity = section["encode_fidelity"]
    nodes: dict[str, list[Node]] = {stage: [] for stage in EVAL_STAGES}
    nodes["eval_cross_domain"].append(plan.add(
        "eval_cross_domain", f"evals/L{layer}/cross_domain",
        {"layer": layer, "seed": seed, **section["cross_domain"], "encode_fidelity": fidelity},
        {"backbone": backbone, **acts, **domain_saes},
    ))  # fmt: skip
    dataset_parents = {
        f"{dataset}__{role}": node
        for dataset, per_layer in llm["datasets"].items()
        for role, node in per_layer[layer].items()
    }
    nodes["eval_sparse_probing"].append(plan.add(
        "eval_sparse_probing", f"evals/L{layer}/sparse_probing",
        {"layer": layer, "seed": seed, **section["sparse_probing"], "labels": config["labels"],
         "pooling": config["probe"]["poolings"][0], "datasets": sorted(llm["datasets"]), "encode_fidelity": fidelity},
        {"backbone": backbone, "sae": primary_sae, **acts, **dataset_parents},
    ))  # fmt: skip
    nodes["eval_transcoder"].append(plan.add(
        "eval_transcoder", f"evals/L{layer}/transcoder",
        {"layer": layer, "seed": seed, **section["transcoder"], "context_length": section["domains"]["context_length"], **corpus},
        {"backbone": backbone},
    ))  # fmt: skip
    nodes["eval_steering"].append(plan.add(
        "eval_steering", f"evals/L{layer}/steering",
        {"layer": layer, "seed": seed, **section["steering"], "encode_fidelity": fidelity, **corpus},
        {"backbone": backbone, "sae": primary_sae, **acts},
    ))  # fmt: skip
    circuit_layers = sorted(llm["sae"])
    nodes["eval_circuit"].append(plan.add(
        "eval_circuit", "evals/circuit",
        {"layers": circuit_layers, "seed": seed, **section["circuit"], "encode_fidelity": fidelity,
         "context_length": section["domains"]["context_length"], **corpus},
        {"backbone": backbone, **{f"sae_L{lay}": llm["sae"][lay] for lay in circuit_layers}},
    ))  # fmt: skip
    nodes["eval_meta_structure"].append(plan.add(
        "eval_meta_structure", f"evals/L{layer}/meta_structure",
        {"layer": layer, "seed": seed, **section["meta_structure"]},
        {"sae": primary_sae},
    ))  # fmt: skip
    for external in section["external_saes"]:
        nodes["eval_external"].append(plan.add(
            "eval_external", f"evals/external/{external['name']}",
            {**external, "content_sha256": _content_sha256(external["path"]), "encode_fidelity": fidelity},
            acts,
        ))  # fmt: skip
    return nodes


def _content_sha256(path: str) -> str | None:
    """sha256 over an external SAE's files (a directory's files in name order), so an edited SAE is a new node."""
    root = Path(path)
    files = sorted(p for p in root.rglob("*") if p.is_file()) if root.is_dir() else [root] if root.is_file() else []
    if not files:
        return None
    digest = hashlib.sha256()
    for file in files:
        digest.update(file.relative_to(root).as_posix().encode() if root.is_dir() else file.name.encode())
        digest.update(bytes.fromhex(sha256_file(file)))  # streamed: external SAEs can be gigabytes
    return digest.hexdigest()
