"""The study's SAE nodes: where each SAE's training activations come from, and its family.

``<modality>.sae_activations.source`` decides the scope of an SAE:

* ``corpus`` (the demo) and ``hub_text``: one activation cache per layer, drawn from text
  (or series) that no task example comes from; one SAE family per (modality, layer), keys
  ``<modality>/L<layer>/...`` (the demo's keys and ids, unchanged);
* ``task_train`` / ``task_train_allpos``: the dataset's own training split, read from the
  extract node's token-level cache (the extract node is the cache's only parent, and its
  split table decides which rows may enter); one family per (modality, dataset, layer),
  keys ``<modality>/<dataset>/L<layer>/...``. The codes, probe and causal nodes of a
  dataset use that dataset's SAE.

A family is every (architecture, expansion, seed) of the ``sae`` section, a quality node
per SAE, and per (architecture, expansion) a stability node when there are several seeds
(plus the disjoint-halves control on the primary layer).

``sae.pretrained.<modality>`` (a published SAE, ``{release, sae_id}`` of sae-lens' registry)
replaces the family: one ``sae_pretrained`` node and its quality node, under the primary
recipe's key (:func:`add_pretrained_sae`).
"""

from __future__ import annotations

import re
from typing import Any

from sae_difficulty.pipeline.consistency import TASK_SOURCES, sae_source
from sae_difficulty.pipeline.plan import Node, Plan

#: The published-SAE stage (``sae.pretrained``). Kept out of ``STAGE_VERSIONS`` (which the
#: synthesis hashes) so configs without a published SAE keep their ids.
PRETRAINED_STAGE_VERSIONS = {"sae_pretrained": "1"}
PRETRAINED_NAME = "pretrained"
#: Keys of ``<modality>.sae_activations`` that only some sources read (kept out of the others' ids).
SOURCE_ONLY_KEYS = ("source", "heldout_fraction", "hub_text")
#: Keys of ``<modality>.sae_activations`` the text sources (corpus, hub_text) read.
TEXT_KEYS = ("tokens", "heldout_tokens", "context_length", "batch_size")
_LAYER = re.compile(r"^L(\d+)$")


def sae_key(scope: str, layer: int, arch: str, expansion: int, seed: int) -> str:
    """An SAE node's key; ``scope`` is the modality, or ``<modality>/<dataset>`` for a task-split SAE."""
    return f"{scope}/L{layer}/{arch}-x{expansion}-s{seed}"


def is_dataset_scoped(section: dict[str, Any]) -> bool:
    """True when the modality trains one SAE per dataset (a task-split source)."""
    return sae_source(section) in TASK_SOURCES


def task_positions(modality: str, source: str) -> str:
    """Which rows of a training example the task-split cache takes: ``last`` (the LM's
    boundary token: the original's dataset-matched SAE) or ``all`` (every prompt position /
    every context step: the LM's all-position SAE and the TSFM's train-split tokens)."""
    return "last" if (modality, source) == ("llm", "task_train") else "all"


def text_activation_params(config: dict[str, Any], modality: str, layer: int, pool: dict[str, Any]) -> dict[str, Any]:
    """Params of a per-layer cache drawn from text / series (sources corpus and hub_text).

    ``corpus`` keeps exactly the keys it always had (so the demo's node ids do not move);
    ``hub_text`` names its dataset and reads no bundled corpus.
    """
    section = config[modality]
    acts = section["sae_activations"]
    base = {"modality": modality, "layer": layer, "seed": config["seed"]}
    if sae_source(section) == "hub_text":
        return {**base, "source": "hub_text", **{k: acts[k] for k in TEXT_KEYS if k in acts}, "hub_text": acts["hub_text"]}
    return {**base, **{k: v for k, v in acts.items() if k not in SOURCE_ONLY_KEYS}, **pool}


def task_activation_params(
    config: dict[str, Any], modality: str, dataset: str, layer: int, source: str | None = None
) -> dict[str, Any]:  # fmt: skip
    """Params of a task-split cache (sources task_train, task_train_allpos); ``source`` defaults to
    the modality's own (the LM's all-position SAE beside the boundary one passes task_train_allpos)."""
    section = config[modality]
    source = source or sae_source(section)
    return {"modality": modality, "dataset": dataset, "layer": layer, "seed": config["seed"], "source": source,
            "positions": task_positions(modality, source),
            "heldout_fraction": section["sae_activations"]["heldout_fraction"]}  # fmt: skip


def sae_spec(sae_cfg: dict[str, Any], arch: str, expansion: int, seed: int) -> dict[str, Any]:
    """One SAE's training params from the ``sae`` section."""
    return {
        "architecture": arch, "expansion": expansion, "seed": seed,
        "k": sae_cfg["k"] if arch != "relu" else None,
        "l1_coefficient": sae_cfg["l1_coefficient"] if arch == "relu" else None,
        "lr": sae_cfg["lr"], "training_tokens": sae_cfg["training_tokens"],
        "batch_size": sae_cfg["batch_size"],
    }  # fmt: skip


def add_sae_family(
    plan: Plan, config: dict[str, Any], modality: str, scope: str, layer: int, acts: Node, backbone: Node,
    pool: dict[str, Any], primary_layer: bool,
) -> dict[tuple[str, int, int], Node]:  # fmt: skip
    """Declare the SAEs of one activation cache with their quality and stability nodes;
    return ``{(architecture, expansion, seed): sae node}``. ``plan`` must offer the
    ``sae_quality`` and ``sae_stability`` lists the synthesis reads."""
    sae_cfg = config["sae"]
    primary_arch, primary_exp, primary_seed = sae_cfg["architectures"][0], sae_cfg["expansions"][0], sae_cfg["seeds"][0]
    section = config[modality]
    family: dict[tuple[str, int, int], Node] = {}
    for arch in sae_cfg["architectures"]:
        for expansion in sae_cfg["expansions"]:
            seeds = {}
            for sae_seed in sae_cfg["seeds"]:
                key = sae_key(scope, layer, arch, expansion, sae_seed)
                sae = plan.add("sae", key, sae_spec(sae_cfg, arch, expansion, sae_seed), {"activations": acts})
                family[(arch, expansion, sae_seed)] = seeds[sae_seed] = sae
                plan.sae_quality.append(plan.add(
                    "sae_quality", f"{key}/quality",
                    {"modality": modality, "layer": layer, "seed": config["seed"],
                     "min_explained_variance": sae_cfg["min_explained_variance"],
                     "spliced_loss": {**section["spliced_loss"], **pool}},
                    {"sae": sae, "activations": acts, "backbone": backbone},
                ))  # fmt: skip
            if len(seeds) < 2:
                continue
            halves = {}
            if sae_cfg["halves_control"] and primary_layer and (arch, expansion) == (primary_arch, primary_exp):
                # The primary recipe again on each half of the cache: the data-split reference.
                primary_spec = seeds[primary_seed].params
                halves = {f"half_{rows}": plan.add("sae", f"{sae_key(scope, layer, arch, expansion, primary_seed)}/{rows}",
                                                   {**primary_spec, "rows": rows}, {"activations": acts})
                          for rows in ("first_half", "second_half")}  # fmt: skip
            plan.sae_stability.append(plan.add(
                "sae_stability", f"{scope}/L{layer}/{arch}-x{expansion}/stability",
                {"n_random": sae_cfg["stability_random_draws"], "seed": config["seed"]},
                {**{f"seed_{s}": node for s, node in seeds.items()}, "activations": acts, **halves},
            ))  # fmt: skip
    return family


def pretrained_sae(config: dict[str, Any], modality: str) -> dict[str, str] | None:
    """The published SAE ``sae.pretrained.<modality>`` names (``{release, sae_id}``), or None."""
    return (config["sae"].get("pretrained") or {}).get(modality)


def single_recipe(sae_cfg: dict[str, Any]) -> dict[str, Any]:
    """The ``sae`` section narrowed to its primary recipe: a published SAE replaces the whole
    family (one SAE: no architecture / expansion sweep, no seeds, no stability rows)."""
    return {**sae_cfg, "architectures": sae_cfg["architectures"][:1], "expansions": sae_cfg["expansions"][:1],
            "seeds": sae_cfg["seeds"][:1]}  # fmt: skip


def add_pretrained_sae(
    plan: Plan, config: dict[str, Any], modality: str, scope: str, layer: int, acts: Node, backbone: Node,
    pool: dict[str, Any],
) -> dict[tuple[str, int, int], Node]:  # fmt: skip
    """Declare the published SAE of ``sae.pretrained.<modality>`` at ``layer`` (stage
    ``sae_pretrained``; its held-out rows, for the encode-fidelity check, come from ``acts``) and
    its quality node, as :func:`add_sae_family` does for a trained SAE; return it under the
    primary recipe's key, so codes, probes and causal patching take it where they take a trained SAE."""
    sae_cfg, source = config["sae"], pretrained_sae(config, modality)
    key = f"{scope}/L{layer}/{PRETRAINED_NAME}"
    sae = plan.add("sae_pretrained", key,
                   {"modality": modality, "layer": layer, "release": source["release"], "sae_id": source["sae_id"],
                    "encode_fidelity": config["sae_evals"]["encode_fidelity"]},
                   {"activations": acts})  # fmt: skip
    plan.sae_quality.append(plan.add(
        "sae_quality", f"{key}/quality",
        {"modality": modality, "layer": layer, "seed": config["seed"],
         "min_explained_variance": sae_cfg["min_explained_variance"],
         "spliced_loss": {**config[modality]["spliced_loss"], **pool}},
        {"sae": sae, "activations": acts, "backbone": backbone},
    ))  # fmt: skip
    return {(sae_cfg["architectures"][0], sae_cfg["expansions"][0], sae_cfg["seeds"][0]): sae}


def describe_sae(node: Node) -> dict[str, Any]:
    """modality, (dataset,) layer, architecture, expansion, seed of an SAE node, from its key.

    ``dataset`` is present only for a task-split SAE (``<modality>/<dataset>/L<layer>/...``),
    so the synthesis params of per-layer SAEs stay what they were.
    """
    parts = node.key.split("/")
    modality, dataset = parts[0], None
    if not _LAYER.match(parts[1]):
        dataset, parts = parts[1], [parts[0], *parts[2:]]
    layer, rest = parts[1], parts[2]
    if node.stage == "sae_pretrained":
        # A published SAE: named by its release and id (no recipe of the project's).
        described = {"modality": modality, "layer": int(layer[1:]), "architecture": PRETRAINED_NAME, "expansion": 0,
                     "seed": 0, "release": node.params["release"], "sae_id": node.params["sae_id"]}  # fmt: skip
        return {"modality": modality, "dataset": dataset, **described} if dataset else described
    arch, expansion, sae_seed = rest.split("-")
    described = {"modality": modality, "layer": int(layer[1:]), "architecture": arch,
                 "expansion": int(expansion[1:]), "seed": int(sae_seed[1:])}  # fmt: skip
    return {"modality": modality, "dataset": dataset, **described} if dataset else described
