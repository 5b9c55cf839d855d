"""The study's DAG as store nodes: which artifacts a config reaches and their ids.

Snakemake calls ``build_plan`` when it parses the workflow; the CLI calls it to say
which nodes a config reaches (``store ls``, ``store gc``, ``status``). A stage's
version is part of every id of that stage: bump it when the stage's code changes
what it writes, so stale artifacts are not reused.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sae_difficulty.pipeline.consistency import (
    backbone_layers,
    sae_expansions,
    sae_source,
)
from sae_difficulty.pipeline.plan import Node, Plan
from sae_difficulty.pipeline.study_disentangle import (
    ROLE_SUFFIX,
    add_allpos_causal,
    disentangled,
)
from sae_difficulty.pipeline.study_evals import EVAL_STAGE_VERSIONS, add_eval_nodes
from sae_difficulty.pipeline.study_modular import (
    MODULAR_STAGE_VERSIONS,
    add_modular_nodes,
)
from sae_difficulty.pipeline.study_saes import (
    PRETRAINED_STAGE_VERSIONS,
    add_pretrained_sae,
    add_sae_family,
    describe_sae,
    is_dataset_scoped,
    pretrained_sae,
    single_recipe,
    task_activation_params,
    task_positions,
    text_activation_params,
)
from sae_difficulty.pipeline.study_synthetic import (
    SYNTHETIC_STAGE_VERSIONS,
    add_synthetic_nodes,
)

STAGE_VERSIONS = {
    "backbone": "1",
    "tasks": "1",
    "evaluate": "1",
    "extract": "3",
    "sae_activations": "1",
    "sae": "2",
    "sae_quality": "1",
    "sae_stability": "2",
    "codes": "2",
    "probe": "3",
    "causal": "3",
    "selective": "2",
    "synthesis": "4",
    **MODULAR_STAGE_VERSIONS,
    **SYNTHETIC_STAGE_VERSIONS,
    **EVAL_STAGE_VERSIONS,
}

MODALITIES = ("llm", "tsfm")
SIZES = ("small", "large")


@dataclass
class Column:
    """One column of the synthesis table: a (modality, dataset) and its headline nodes."""

    modality: str
    dataset: str
    probe: Node
    selective: Node
    causal: Node
    #: The same causal test with the all-position SAE (``llm.causal.disentangle``), else None.
    causal_allpos_sae: Node | None = None

    @property
    def name(self) -> str:
        return f"{self.modality}_{self.dataset}"


# Parameter counts of the hub models config/paper.yaml names (for memory requests).
HUB_PARAMETERS = {
    "EleutherAI/pythia-14m": 14e6, "EleutherAI/pythia-70m": 70e6, "EleutherAI/pythia-160m": 160e6,
    "EleutherAI/pythia-410m": 410e6, "EleutherAI/pythia-1b": 1.0e9, "EleutherAI/pythia-1.4b": 1.4e9,
    "EleutherAI/pythia-2.8b": 2.8e9, "EleutherAI/pythia-6.9b": 6.9e9,
    "EleutherAI/pythia-70m-deduped": 70e6, "EleutherAI/pythia-410m-deduped": 410e6,
    "google/gemma-2-2b": 2.6e9, "google/gemma-2-9b": 9.2e9,
    "amazon/chronos-t5-tiny": 8e6, "amazon/chronos-t5-mini": 20e6, "amazon/chronos-t5-small": 46e6,
    "amazon/chronos-t5-base": 200e6, "amazon/chronos-t5-large": 710e6,
}  # fmt: skip
UNKNOWN_HUB_PARAMETERS = 3e9
HUB_WIDTH = {"EleutherAI/pythia-410m": 1024, "EleutherAI/pythia-2.8b": 2560, "EleutherAI/pythia-70m-deduped": 512,
             "google/gemma-2-2b": 2304,
             "amazon/chronos-t5-small": 512, "amazon/chronos-t5-base": 768}  # fmt: skip
UNKNOWN_HUB_WIDTH = 4096


def backbone_parameters(params: dict[str, Any]) -> float:
    """Rough parameter count of a backbone node (hub table, or from the demo sizes)."""
    if params.get("hub"):
        return HUB_PARAMETERS.get(params["hub"], UNKNOWN_HUB_PARAMETERS)
    d, layers = params.get("d_model", 0), params.get("n_layers", 0)
    width = params.get("d_mlp") or params.get("d_ff") or 4 * d
    vocab = params.get("vocab_size") or params.get("n_tokens") or params.get("p") or 0
    stacks = 2 if params.get("modality") == "tsfm" else 1  # Chronos-T5: encoder and decoder
    return stacks * layers * (4 * d * d + 2 * d * width) + 2 * vocab * d


def memory_request_mb(node: Node, base_mb: int) -> int:
    """mem_mb for a job: its base plus three fp32 copies of the backbone it loads
    (the HF model, the converted copy, activations/gradients), and its SAE if it trains one."""
    backbone = node if node.stage.endswith("backbone") else node.parents.get("backbone")
    extra = 0.0
    if backbone is not None:
        extra += 3 * 4 * backbone_parameters(backbone.params)
    if node.stage == "sae":
        activations = node.parents["activations"]
        # The cache's source: a backbone (d_model, or a hub width; a task-split cache's through its
        # extract node) or the synthetic model (hidden_dim).
        extract = activations.parents.get("extract")
        source = activations.parents.get("backbone") or activations.parents.get("model") or (
            extract.parents.get("backbone") if extract is not None else None)
        model = source.params if source is not None else {}
        width = model.get("d_model") or model.get("hidden_dim") or UNKNOWN_HUB_WIDTH
        d_in = HUB_WIDTH.get(model["hub"], UNKNOWN_HUB_WIDTH) if model.get("hub") else width
        # weights, gradients and two Adam moments of W_enc and W_dec
        extra += 4 * 4 * 2 * d_in * d_in * node.params["expansion"]
    return int(base_mb + extra / 2**20)


def file_sha256(path: str | Path) -> str | None:
    path = Path(path)
    if not path.is_file():
        return None
    return hashlib.sha256(path.read_bytes()).hexdigest()


class StudyPlan(Plan):
    """The plan plus the handles the rules and the synthesis need."""

    def __init__(self, config: dict[str, Any]):
        super().__init__({**STAGE_VERSIONS, **PRETRAINED_STAGE_VERSIONS})
        self.config = config
        self.columns: list[Column] = []
        self.sae_quality: list[Node] = []
        self.sae_stability: list[Node] = []
        self.sweep_probes: list[Node] = []
        self.modular: dict[str, Any] = {}
        self.evals: dict[str, list[Node]] = {}


def enabled_datasets(section: dict[str, Any]) -> list[str]:
    return [name for name, spec in section["datasets"].items() if spec.get("enabled", True)]


def _modality_params(config: dict[str, Any], modality: str) -> dict[str, Any]:
    return config[modality]


def _dataset_params(config: dict[str, Any], modality: str, dataset: str) -> dict[str, Any]:
    params = dict(config[modality]["datasets"][dataset])
    if modality == "tsfm" and params.get("sha256") is None:
        # No expected checksum given: hash the file itself so an edited file is a new node.
        params["content_sha256"] = file_sha256(params["path"])
    return params


def _etth1_reference(section: dict[str, Any]) -> dict[str, Any]:
    etth1 = dict(section["datasets"]["etth1"])
    reference = {k: etth1[k] for k in ("path", "sha256", "target", "pretrain_fraction")}
    if etth1.get("sha256") is None:
        reference["content_sha256"] = file_sha256(etth1["path"])
    return reference


def _pool_params(config: dict[str, Any], modality: str) -> dict[str, Any]:
    """What the backbone was trained on, for stages that draw from the same pool.

    The TSFM's SAE activations and spliced-loss windows come from its pretraining mix
    (synthetic series + ETTh1 before the pretraining cutoff, before every evaluated
    window); the LM's from its held-apart corpus.
    """
    section = config[modality]
    if modality == "llm":
        return {"corpus": section["corpus"]}
    backbone = section["backbones"][section["primary_backbone"]]
    return {"synthetic_series": backbone["synthetic_series"], "synthetic_length": backbone["synthetic_length"],
            "etth1": _etth1_reference(section)}  # fmt: skip


def _backbone_params(config: dict[str, Any], modality: str, size: str) -> dict[str, Any]:
    section = config[modality]
    params = dict(section["backbones"][size])
    if params.get("hub"):
        return {"hub": params["hub"]}
    if modality == "llm":
        params["corpus"] = section["corpus"]
    else:
        # The demo Chronos also pretrains on ETTh1 before the pretraining cutoff: the
        # cutoff and the file are part of what it learned.
        params["etth1"] = _etth1_reference(section)
    return params


def _probe_params(config: dict[str, Any], pooling: str, scope: str, modality: str) -> dict[str, Any]:
    """A probe node's params: the probe section, the pooling, the label rule with ``scope``
    and, for the LM, the example filters (``llm.filters``).

    ``probe.inner_cv`` reaches only the TSFM's probes, and only when it is not the default
    ``blocked``: it chooses the inner CV of time-ordered windows, the LM's examples are
    independent (shuffled stratified inner CV either way), and leaving the default out keeps
    the ids of the probe nodes that existed before the key."""
    extra = {"filters": config["llm"]["filters"]} if modality == "llm" else {}
    probe = {k: v for k, v in config["probe"].items() if k != "poolings"}
    if modality != "tsfm" or probe.get("inner_cv", "blocked") == "blocked":
        probe.pop("inner_cv", None)
    return {"pooling": pooling, "seed": config["seed"],
            "labels": {"quantile": config["labels"]["quantile"], "scope": scope}, **probe, **extra}  # fmt: skip


@dataclass
class _Leg:
    """One modality's shared nodes and settings, for the per-dataset nodes (:func:`_add_dataset`)."""

    plan: StudyPlan
    config: dict[str, Any]  # the run's config with this modality's ``sae`` section
    modality: str
    backbones: dict[str, Node]
    layers: list[int]
    published: Any  # sae.pretrained.<modality>, or None
    # (dataset or None, layer, arch, expansion, seed) -> SAE; (dataset or None, layer) -> its cache
    sae_nodes: dict[tuple[Any, ...], Node] = field(default_factory=dict)
    activation_nodes: dict[tuple[str | None, int], Node] = field(default_factory=dict)

    @property
    def section(self) -> dict[str, Any]:
        return self.config[self.modality]

    @property
    def primary(self) -> Node:
        return self.backbones[self.section["primary_backbone"]]

    @property
    def per_dataset(self) -> bool:
        return is_dataset_scoped(self.section)

    @property
    def primary_recipe(self) -> tuple[str, int, int]:
        sae_cfg = self.config["sae"]
        return sae_cfg["architectures"][0], sae_cfg["expansions"][0], sae_cfg["seeds"][0]

    def add_saes(self, dataset: str | None, layer: int, acts: Node) -> None:
        """The SAE family (or the published SAE) trained on ``acts``."""
        self.activation_nodes[(dataset, layer)] = acts
        scope = f"{self.modality}/{dataset}" if dataset else self.modality
        pool = _pool_params(self.config, self.modality)
        if self.published:
            family = add_pretrained_sae(self.plan, self.config, self.modality, scope, layer, acts, self.primary, pool)
        else:
            family = add_sae_family(self.plan, self.config, self.modality, scope, layer, acts, self.primary, pool,
                                    layer == self.layers[0])  # fmt: skip
        self.sae_nodes.update({(dataset, layer, *recipe): node for recipe, node in family.items()})

    def sae(self, dataset: str | None, layer: int, arch: str | None = None, expansion: int | None = None) -> Node:
        """The SAE of (dataset scope, layer, recipe) at the primary seed (default: the primary recipe)."""
        primary_arch, primary_exp, primary_seed = self.primary_recipe
        scope = dataset if self.per_dataset else None
        return self.sae_nodes[(scope, layer, arch or primary_arch, expansion or primary_exp, primary_seed)]


def build_plan(config: dict[str, Any]) -> StudyPlan:
    """Declare every node the (validated) config reaches."""
    plan = StudyPlan(config)
    llm_handles: dict[str, Any] = {"sae": {}, "datasets": {}}
    for modality in MODALITIES:
        if config[modality]["enabled"]:
            _add_leg(plan, config, modality, llm_handles)
    plan.modular = add_modular_nodes(plan, config)
    plan.evals = add_eval_nodes(plan, config, llm_handles)
    plan.synthetic = add_synthetic_nodes(plan, config)
    plan.synthesis = _add_synthesis(plan, config)
    return plan


def _add_leg(plan: StudyPlan, config: dict[str, Any], modality: str, llm_handles: dict[str, Any]) -> None:
    """One modality: its backbones, SAEs (per layer, or per dataset x layer) and every dataset's nodes."""
    section = config[modality]
    # This modality's SAE expansions (sae.expansions may give each modality its own list).
    modality_config = {**config, "sae": {**config["sae"], "expansions": sae_expansions(config["sae"], modality)}}
    published = pretrained_sae(config, modality)
    if published:  # sae.pretrained: one published SAE replaces the trained family
        modality_config["sae"] = single_recipe(modality_config["sae"])
    backbones = {
        size: plan.add("backbone", f"{modality}/{size}", {"modality": modality, "size": size, "seed": config["seed"],
                                                           **_backbone_params(config, modality, size)})
        for size in SIZES
    }  # fmt: skip
    leg = _Leg(plan, modality_config, modality, backbones, backbone_layers(section), published)
    if modality == "llm":
        llm_handles["backbone"] = leg.primary
    if not leg.per_dataset:
        pool = _pool_params(config, modality)
        for layer in leg.layers:
            leg.add_saes(None, layer, plan.add("sae_activations", f"{modality}/L{layer}/activations",
                                               text_activation_params(config, modality, layer, pool), {"backbone": leg.primary}))  # fmt: skip
    for dataset in enabled_datasets(section):
        _add_dataset(leg, dataset, llm_handles)
    if modality == "llm":
        # The evaluation suite uses one SAE per layer: with task-split SAEs, the first dataset's.
        first = next((d for d, _ in leg.activation_nodes), None)
        llm_handles["sae"] = {layer: leg.sae(first, layer) for layer in leg.layers}


def _add_dataset(leg: _Leg, dataset: str, llm_handles: dict[str, Any]) -> None:
    """One dataset of a leg: tasks, evaluations, per layer its extract, codes and probes, then
    the headline column's causal and selective nodes."""
    plan, config, modality, section = leg.plan, leg.config, leg.modality, leg.section
    seed, sae_cfg, labels = config["seed"], config["sae"], config["labels"]
    primary_arch, primary_exp, _ = leg.primary_recipe
    primary_pooling = config["probe"]["poolings"][0]
    tasks = plan.add("tasks", f"{modality}/{dataset}/tasks",
                     {"modality": modality, "dataset": dataset, "seed": seed, **_dataset_params(config, modality, dataset)})  # fmt: skip
    evaluations = {
        size: plan.add("evaluate", f"{modality}/{dataset}/{size}/evaluate", {"seed": seed, **section["evaluate"]},
                       {"backbone": leg.backbones[size], "tasks": tasks})
        for size in SIZES
    }  # fmt: skip
    evaluation = evaluations[section["primary_backbone"]]
    headline_probe = None
    # A boundary-token SAE is checked on boundary rows (it was never fitted to the others).
    sae_rows = {"sae_positions": "last"} if leg.per_dataset and task_positions(modality, sae_source(section)) == "last" else {}
    for layer in leg.layers:
        extract = plan.add("extract", f"{modality}/{dataset}/L{layer}/extract", {"layer": layer, **section["extract"]},
                           {"backbone": leg.primary, "tasks": tasks})  # fmt: skip
        if leg.per_dataset:
            leg.add_saes(dataset, layer, plan.add("sae_activations", f"{modality}/{dataset}/L{layer}/activations",
                                                  task_activation_params(config, modality, dataset, layer), {"extract": extract}))  # fmt: skip
        for arch in sae_cfg["architectures"]:
            for expansion in sae_cfg["expansions"]:
                codes = plan.add("codes", f"{modality}/{dataset}/L{layer}/{arch}-x{expansion}/codes",
                                 {"min_explained_variance": sae_cfg["min_explained_variance"], **sae_rows},
                                 {"sae": leg.sae(dataset, layer, arch, expansion), "extract": extract})  # fmt: skip
                if modality == "llm" and (arch, expansion) == (primary_arch, primary_exp):
                    llm_handles["datasets"].setdefault(dataset, {})[layer] = {"evaluate": evaluation, "extract": extract, "codes": codes}
                for pooling in config["probe"]["poolings"]:
                    probe_key = f"{modality}/{dataset}/L{layer}/{arch}-x{expansion}/{pooling}/probe"
                    probe_parents = {"evaluate": evaluation, "extract": extract, "codes": codes, "tasks": tasks}
                    probe = plan.add("probe", probe_key, _probe_params(config, pooling, labels["scope"], modality), probe_parents)
                    if (layer, arch, expansion, pooling) != (leg.layers[0], primary_arch, primary_exp, primary_pooling):
                        plan.sweep_probes.append(probe)
                        continue
                    headline_probe = probe
                    if labels.get("robustness_scope"):
                        # The same headline probe with the other label scope: a robustness row.
                        plan.sweep_probes.append(plan.add(
                            "probe", f"{probe_key}-labels-{labels['robustness_scope']}",
                            _probe_params(config, pooling, labels["robustness_scope"], modality), probe_parents))  # fmt: skip
    scope = dataset if leg.per_dataset else None
    causal = plan.add(
        "causal", f"{modality}/{dataset}/causal",
        {"seed": seed, **config["causal"], **{k: v for k, v in section["causal"].items() if k != "disentangle"},
         "block_length": config["probe"]["block_length"],
         "min_explained_variance": sae_cfg["min_explained_variance"], "layer": leg.layers[0], **sae_rows},
        {"backbone": leg.primary, "tasks": tasks, "sae": leg.sae(dataset, leg.layers[0]), "probe": headline_probe,
         "activations": leg.activation_nodes[(scope, leg.layers[0])]},
    )  # fmt: skip
    cheap_size = "small" if section["primary_backbone"] == "small" else "large"
    expensive_size = "large" if cheap_size == "small" else "small"
    selective = plan.add(
        "selective", f"{modality}/{dataset}/selective",
        {"seed": seed, "calibration": config["calibration"], "cascade": config["cascade"]},
        {"probe": headline_probe, "cheap": evaluations[cheap_size], "expensive": evaluations[expensive_size]},
    )  # fmt: skip
    # The 2x2 disentanglement: the same causal test with an all-position SAE (study_disentangle).
    allpos = add_allpos_causal(plan, config, dataset, causal) if disentangled(config, modality) else None
    plan.columns.append(Column(modality, dataset, headline_probe, selective, causal, allpos))


def _primary_expansion(config: dict[str, Any]) -> int | dict[str, int]:
    """The headline expansion: one number, or per enabled modality when ``sae.expansions`` is a mapping."""
    if not isinstance(config["sae"]["expansions"], dict):
        return config["sae"]["expansions"][0]
    return {m: sae_expansions(config["sae"], m)[0] for m in MODALITIES if config[m]["enabled"]}


def _add_synthesis(plan: StudyPlan, config: dict[str, Any]) -> Node:
    """The synthesis node: every reported node is a parent, described in its params."""
    parents: dict[str, Node] = {}
    columns, sae_rows, stability_rows, sweep_rows, disentangle_rows = [], [], [], [], []
    for column in plan.columns:
        roles = {stage: f"{column.name}__{stage}" for stage in ("probe", "selective", "causal")}
        parents.update({roles["probe"]: column.probe, roles["selective"]: column.selective, roles["causal"]: column.causal})
        columns.append({"name": column.name, "modality": column.modality, "dataset": column.dataset, "roles": roles})
        if column.causal_allpos_sae is not None:
            parents[f"{column.name}__{ROLE_SUFFIX}"] = column.causal_allpos_sae
            disentangle_rows.append({"column": column.name, "boundary_sae": roles["causal"],
                                     "allpos_sae": f"{column.name}__{ROLE_SUFFIX}"})  # fmt: skip
    for node in plan.sae_quality:
        role = f"sae_quality__{node.id}"
        parents[role] = node
        sae_rows.append({"role": role, **describe_sae(node.parents["sae"])})
    for node in plan.sae_stability:
        role = f"sae_stability__{node.id}"
        parents[role] = node
        seed_roles = [r for r in node.parents if r.startswith("seed_")]  # the other parent is the activations
        description = describe_sae(node.parents[seed_roles[0]])
        description.pop("seed")
        stability_rows.append({"role": role, "seeds": sorted(int(r.split("_")[1]) for r in seed_roles), **description})
    for node in plan.sweep_probes:
        role = f"probe__{node.id}"
        parents[role] = node
        modality, dataset, layer, sae_name, pooling = node.key.split("/")[:5]
        arch, expansion = sae_name.split("-")
        sweep_rows.append({"role": role, "column": f"{modality}_{dataset}", "layer": int(layer[1:]),
                           "architecture": arch, "expansion": int(expansion[1:]), "pooling": pooling,
                           "label_scope": node.params["labels"]["scope"]})  # fmt: skip
    modular_role = None
    if plan.modular:
        modular_role = f"modular_stability__{plan.modular['stability'].id}"
        parents[modular_role] = plan.modular["stability"]
    extra: dict[str, Any] = {}
    if disentangle_rows:  # only then: a config without the 2x2 disentanglement keeps its synthesis id
        extra["disentangle_rows"] = disentangle_rows
    if plan.synthetic:  # only then: a config without the synthetic study keeps its synthesis id
        extra["ground_truth_role"] = f"ground_truth__{plan.synthetic['answer'].id}"
        parents[extra["ground_truth_role"]] = plan.synthetic["answer"]
    sae_cfg = config["sae"]
    params = {
        "modular_role": modular_role,
        **extra,
        "name": config["name"],
        "seed": config["seed"],
        "primary": {"architecture": sae_cfg["architectures"][0], "expansion": _primary_expansion(config),
                    "seed": sae_cfg["seeds"][0], "pooling": config["probe"]["poolings"][0],
                    "probe_mode": config["probe"]["mode"], "labels": config["labels"],
                    "layers": {m: backbone_layers(config[m])[0] for m in MODALITIES if config[m]["enabled"]}},  # fmt: skip
        "verdicts": config["synthesis"],
        "columns": columns,
        "sae_rows": sae_rows,
        "stability_rows": stability_rows,
        "sweep_rows": sweep_rows,
        # The published-SAE stage's version only where a published SAE is used (other ids stay).
        "stage_versions": {**STAGE_VERSIONS, **PRETRAINED_STAGE_VERSIONS} if plan.stage("sae_pretrained") else STAGE_VERSIONS,
    }
    return plan.add("synthesis", "synthesis", params, parents)
