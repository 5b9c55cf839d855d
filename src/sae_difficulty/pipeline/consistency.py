"""Config checks the schema cannot express, run right after schema validation.

Each catches a value that would otherwise pass the dry run and silently distort the
results (a duplicated seed drops the stability rows, a duplicated expansion lists every
SAE twice) or fail minutes into a job (a layer beyond a demo model's depth). Values
that depend on a hub model are left to the job: the model does not exist yet.
Every check raises a one-line InputError naming the key.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from sae_difficulty.utils.errors import InputError

ARCHITECTURES_USING_K = ("topk", "batchtopk")
#: SAE training-data sources that read the dataset's own training split (one SAE per dataset x layer).
TASK_SOURCES = ("task_train", "task_train_allpos")


def backbone_layers(section: dict[str, Any], size: str | None = None) -> list[int]:
    """The layers of backbone ``size`` (default: the primary one) of a modality section.

    ``layers`` is a list (it serves the primary backbone) or a mapping ``{small: [...],
    large: [...]}``; the primary backbone's list drives extraction and the SAEs.
    """
    layers = section["layers"]
    size = size or section["primary_backbone"]
    if isinstance(layers, dict):
        return list(layers.get(size) or [])
    return list(layers) if size == section["primary_backbone"] else []


DEFAULT_EXPANSIONS = [4]


def sae_expansions(sae: dict[str, Any], modality: str) -> list[int]:
    """The SAE expansions of ``modality``: ``sae.expansions`` is a list (both modalities) or a
    mapping ``{llm: [...], tsfm: [...]}`` (the original study's 4,096 latents are 4x for the LM and 8x for Chronos)."""
    expansions = sae["expansions"]
    if isinstance(expansions, dict):
        return list(expansions.get(modality) or DEFAULT_EXPANSIONS)
    return list(expansions)


def sae_source(section: dict[str, Any]) -> str:
    """Where a modality's SAEs get their training activations (``<modality>.sae_activations.source``)."""
    return section["sae_activations"].get("source", "corpus")


def check_consistency(config: dict[str, Any]) -> None:
    """Raise InputError on the first cross-key problem of a schema-valid config."""
    _check_no_duplicates(config, "")
    for modality in ("llm", "tsfm"):
        section = config[modality]
        if section["enabled"]:
            _check_datasets_enabled(section, modality)
            _check_layers_within_depth(section, modality)
            _check_k_within_width(config, section, modality)
            _check_sae_source(config, section, modality)
            _check_pretrained_layers(config, section, modality)
    if config["llm"]["enabled"]:
        _check_disentangle(config, config["llm"])
    if config["tsfm"]["enabled"]:
        _check_tsfm_context(config["tsfm"])
    if config["modular"]["enabled"]:
        _check_modular(config["modular"])


def _check_no_duplicates(value: Any, key: str) -> None:
    """No list in the config may name the same value twice (seeds, expansions, layers, ...)."""
    if isinstance(value, dict):
        for name, child in value.items():
            _check_no_duplicates(child, f"{key}.{name}" if key else str(name))
        return
    if not isinstance(value, list):
        return
    if all(isinstance(item, dict) and "name" in item for item in value):
        names = [item["name"] for item in value]
        repeated = [name for name, count in Counter(names).items() if count > 1]
        if repeated:
            raise InputError(f"config key '{key}': name {repeated[0]!r} appears {names.count(repeated[0])} times; each entry needs its own name")
        return
    scalars = [item for item in value if isinstance(item, (str, int, float, bool))]
    repeated = [item for item, count in Counter(scalars).items() if count > 1]
    if repeated:
        raise InputError(
            f"config key '{key}': {repeated[0]!r} appears {scalars.count(repeated[0])} times in {value}; "
            f"each value must appear once"
        )


def _check_datasets_enabled(section: dict[str, Any], modality: str) -> None:
    if not any(spec.get("enabled", True) for spec in section["datasets"].values()):
        raise InputError(
            f"config key '{modality}.datasets': every dataset is disabled but {modality}.enabled is true; "
            f"enable one of {sorted(section['datasets'])} or set {modality}.enabled: false"
        )


def _primary_backbone(section: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    name = section["primary_backbone"]
    return name, section["backbones"][name]


def _check_layers_within_depth(section: dict[str, Any], modality: str) -> None:
    """Each backbone's layers exist in it: a demo backbone's depth is its ``n_layers``; a hub
    model's is known only once loaded (the job checks it before any work)."""
    primary = section["primary_backbone"]
    per_backbone = isinstance(section["layers"], dict)
    if per_backbone and not section["layers"].get(primary):
        raise InputError(
            f"config key '{modality}.layers': the mapping has no list for the primary backbone {primary!r} "
            f"({modality}.primary_backbone); expected {{{primary}: [...]}}, got keys {sorted(section['layers'])}"
        )
    for name, backbone in section["backbones"].items():
        layers = backbone_layers(section, name)
        if backbone.get("hub") or not layers:
            continue
        depth = backbone["n_layers"]
        key = f"{modality}.layers.{name}" if per_backbone else f"{modality}.layers"
        for layer in layers:
            if layer >= depth:
                raise InputError(
                    f"config key '{key}': layer {layer} does not exist in the {name} demo backbone "
                    f"({modality}.backbones.{name}.n_layers = {depth}, layers 0..{depth - 1})"
                )


def _check_sae_source(config: dict[str, Any], section: dict[str, Any], modality: str) -> None:
    """A task-split SAE needs one train split (holdout mode); hub text needs a dataset name."""
    source = sae_source(section)
    if source in TASK_SOURCES and config["probe"]["mode"] != "holdout":
        raise InputError(
            f"config key '{modality}.sae_activations.source': {source} trains the SAE on the training split, which needs "
            f"probe.mode holdout, got probe.mode {config['probe']['mode']!r} (in cv mode every outer fold would need its own SAE)"
        )
    if source == "hub_text" and not section["sae_activations"]["hub_text"].get("name"):
        raise InputError(
            f"config key '{modality}.sae_activations.hub_text.name': source hub_text needs a hub dataset name, got null"
        )


def _check_disentangle(config: dict[str, Any], section: dict[str, Any]) -> None:
    """The 2x2 causal disentanglement sets a trained all-position SAE beside the boundary SAE:
    it needs the boundary SAE (source task_train) and trained SAEs (no published one)."""
    if not section["causal"].get("disentangle"):
        return
    source = sae_source(section)
    if source != "task_train":
        raise InputError(
            f"config key 'llm.causal.disentangle': the 2x2 disentanglement sets an all-position SAE beside the boundary SAE, "
            f"which needs llm.sae_activations.source task_train, got {source!r}"
        )
    published = (config["sae"].get("pretrained") or {}).get("llm")
    if published:
        raise InputError(
            f"config key 'llm.causal.disentangle': the 2x2 disentanglement trains an all-position SAE beside the boundary one, "
            f"got a published SAE instead (sae.pretrained.llm {published['release']}/{published['sae_id']}); set one of them off"
        )


def _check_pretrained_layers(config: dict[str, Any], section: dict[str, Any], modality: str) -> None:
    """A published SAE (sae.pretrained) reads one hook: its modality probes exactly one layer."""
    published = (config["sae"].get("pretrained") or {}).get(modality)
    layers = backbone_layers(section)
    if published and len(layers) != 1:
        raise InputError(
            f"config key '{modality}.layers': sae.pretrained.{modality} ({published['release']}/{published['sae_id']}) "
            f"reads one hook, so the primary backbone probes exactly one layer (the SAE's); got {layers}"
        )


def _check_k_within_width(config: dict[str, Any], section: dict[str, Any], modality: str) -> None:
    sae = config["sae"]
    if not any(arch in ARCHITECTURES_USING_K for arch in sae["architectures"]):
        return
    name, backbone = _primary_backbone(section)
    if backbone.get("hub"):
        return
    expansion = min(sae_expansions(sae, modality))
    width = expansion * backbone["d_model"]
    if sae["k"] > width:
        raise InputError(
            f"config key 'sae.k': {sae['k']} active features exceed the narrowest {modality} SAE's width {width} "
            f"(sae.expansions min {expansion} x {modality}.backbones.{name}.d_model {backbone['d_model']})"
        )


def _check_tsfm_context(section: dict[str, Any]) -> None:
    # Both backbones forecast every dataset's windows (the cascade compares them).
    for dataset_name, dataset in section["datasets"].items():
        if not dataset.get("enabled", True):
            continue
        for size, backbone in section["backbones"].items():
            if not backbone.get("hub") and dataset["context_length"] > backbone["context_length"]:
                raise InputError(
                    f"config key 'tsfm.datasets.{dataset_name}.context_length': {dataset['context_length']} exceeds "
                    f"the {size} demo backbone's tsfm.backbones.{size}.context_length {backbone['context_length']}"
                )


def is_prime(n: int) -> bool:
    if n < 2:
        return False
    divisor = 2
    while divisor * divisor <= n:
        if n % divisor == 0:
            return False
        divisor += 1
    return True


def _check_modular(section: dict[str, Any]) -> None:
    p = section["p"]
    if not is_prime(p):
        raise InputError(f"config key 'modular.p': {p} is not prime; the Fourier ground truth of (a + b) mod p needs a prime modulus")
    if section["layer"] >= section["n_layers"]:
        raise InputError(
            f"config key 'modular.layer': block {section['layer']} does not exist "
            f"(modular.n_layers = {section['n_layers']}, blocks 0..{section['n_layers'] - 1})"
        )
    width = section["expansion"] * section["d_model"]
    if any(arch in ARCHITECTURES_USING_K for arch in section["architectures"]) and section["k"] > width:
        raise InputError(
            f"config key 'modular.k': {section['k']} active features exceed the SAE width {width} "
            f"(modular.expansion {section['expansion']} x modular.d_model {section['d_model']})"
        )
