"""What a complete node of each stage holds: its required files and zarr arrays.

One table for every stage, read off what the stage (and the modules it calls) write.
The writer refuses to publish a node that lacks any of them, the manifest records the
declaration the node was checked against, and ``store verify`` re-checks it, so a node
whose build was cut short (its temporary directory deleted and recreated under it) can
never pass for complete. Only files written unconditionally are declared (figures and
optional checks may be absent). Declarations are not part of a node's spec, so
editing this table changes no node id.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sae_difficulty.pipeline.artifacts import (
    ACTIVATIONS,
    BACKBONE_SOURCE,
    CODES,
    EVALUATION,
    EXAMPLES,
    MODEL_DIR,
    SAE_DIR,
)

# zarr v3 keeps an array's metadata in <group>/<array>/zarr.json.
ZARR_ARRAY_METADATA = "zarr.json"


@dataclass(frozen=True)
class Declaration:
    """Files (paths relative to the node) and, per zarr group, the arrays it must hold."""

    files: tuple[str, ...] = ()
    arrays: Mapping[str, tuple[str, ...]] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"files": sorted(self.files), "arrays": {group: sorted(names) for group, names in sorted(self.arrays.items())}}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Declaration:
        return cls(tuple(data.get("files", ())), {g: tuple(a) for g, a in dict(data.get("arrays", {})).items()})

    def missing(self, directory: str | Path) -> list[str]:
        """What ``directory`` lacks of this declaration, one readable item per entry."""
        directory = Path(directory)
        absent = [name for name in self.files if not (directory / name).is_file()]
        for group, names in self.arrays.items():
            if not (directory / group / ZARR_ARRAY_METADATA).is_file():
                absent.append(f"{group} (zarr group)")
                continue
            absent += [f"{group}/{name} (zarr array)" for name in names if not (directory / group / name / ZARR_ARRAY_METADATA).is_file()]
        return absent


def _experiment(name: str, *extra: str) -> Declaration:
    """``write_experiment``'s pair plus the stage's other files."""
    return Declaration((f"{name}.json", f"{name}.parquet", *extra))


def _evaluation(name: str, *extra: str) -> Declaration:
    """``stages.evals_common.write_evaluation``: result, table and the ledger's headline."""
    return Declaration((f"{name}.json", f"{name}.parquet", "headline.json", *extra))


def _backbone(params: Mapping[str, Any]) -> Declaration:
    if params.get("hub"):
        return Declaration((BACKBONE_SOURCE,))  # loaded from the hub by each job
    # save_pretrained: config + weights (and the tokenizer, for the LM)
    files = [BACKBONE_SOURCE, "training.json", f"{MODEL_DIR}/config.json", f"{MODEL_DIR}/model.safetensors"]
    if params.get("modality") == "llm":
        files.append(f"{MODEL_DIR}/tokenizer.json")
    return Declaration(tuple(files))


def _tasks(params: Mapping[str, Any]) -> Declaration:
    files = ["tasks.json", "records.jsonl", EXAMPLES]
    if params.get("modality") == "llm":
        files.append("task.json")
    return Declaration(tuple(files))


EXAMPLE_ARRAYS = ("tokens", "last", "mean", "max", "offsets")  # saes.cache.write_activation_cache's contract
TRAINING_ARRAYS = ("train", "heldout")  # saes.cache.write_training_cache's contract
SAE_FILES = (f"{SAE_DIR}/cfg.json", f"{SAE_DIR}/sae_weights.safetensors", f"{SAE_DIR}/training_summary.json")

DECLARATIONS: dict[str, Declaration | Callable[[Mapping[str, Any]], Declaration]] = {
    "backbone": _backbone,
    "tasks": _tasks,
    "evaluate": Declaration((EVALUATION, "evaluation.json")),
    "extract": Declaration(("extract.json", EXAMPLES), {ACTIVATIONS: EXAMPLE_ARRAYS}),
    "sae_activations": Declaration(("sae_activations.json",), {ACTIVATIONS: TRAINING_ARRAYS}),
    "sae": Declaration(("training.json", *SAE_FILES)),
    # a published SAE saved in sae-lens' format, with its provenance (stages.sae_pretrained)
    "sae_pretrained": Declaration(("pretrained.json", f"{SAE_DIR}/cfg.json", f"{SAE_DIR}/sae_weights.safetensors")),
    "sae_quality": _experiment("quality"),
    "sae_stability": _experiment("stability"),
    "codes": Declaration(("codes.json", EXAMPLES), {CODES: ("last", "mean", "max")}),
    "probe": _experiment("probe", "scores.parquet", "coefficients.parquet"),
    "causal": _experiment("causal", "deltas.parquet"),
    "selective": _experiment("selective"),
    "synthesis": Declaration(("cross_modal_synthesis.md", "cross_modal_synthesis.parquet", "cross_modal_synthesis.json")),
    "modular_backbone": Declaration(("training.json", "training_curves.parquet", f"{MODEL_DIR}/config.json", f"{MODEL_DIR}/model.safetensors")),
    "modular_activations": Declaration(("activations.json", "inputs.parquet"), {ACTIVATIONS: TRAINING_ARRAYS}),
    "modular_stability": _experiment("stability", "saes.parquet", "pairs.parquet", "spectrum.parquet", "stability.md"),
    "domain_activations": Declaration(("domain_activations.json",), {ACTIVATIONS: (*TRAINING_ARRAYS, "heldout_tokens")}),
    # sae-lens' SyntheticModel.save (the true dictionary is synthetic_model.safetensors' feature_vectors)
    "synthetic_model": Declaration(("synthetic_model.json", "synthetic_model/synthetic_model_config.json",
                                    "synthetic_model/synthetic_model.safetensors")),
    "synthetic_activations": Declaration(("synthetic_activations.json",), {ACTIVATIONS: TRAINING_ARRAYS}),
    "ground_truth": Declaration(("answer.json", "answer.parquet", "features.parquet", "headline.json", "ground_truth.md",
                                 "figures/mcc_vs_l0.png", "figures/stability_vs_recovery.png")),
}
# Every ``eval_<name>`` stage writes through ``write_evaluation(ctx.out, "<name>", ...)``.
EVAL_STAGE_PREFIX = "eval_"


def declared_outputs(stage: str, params: Mapping[str, Any] | None = None) -> Declaration:
    """The declaration of ``stage`` (given the node's params); empty for a stage not in the table."""
    if stage not in DECLARATIONS and stage.startswith(EVAL_STAGE_PREFIX):
        return _evaluation(stage[len(EVAL_STAGE_PREFIX):])
    entry = DECLARATIONS.get(stage, Declaration())
    return entry(params or {}) if callable(entry) else entry
