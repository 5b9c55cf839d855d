"""The language-model adapter: a Pythia-architecture LM on HellaSwag and SQuAD.

``LanguageModality`` satisfies :class:`sae_difficulty.modalities.base.Modality`; the
work is done in sibling modules, re-exported here:

* :mod:`llm_corpus`: the Python-shipped demo corpus (fixed roles by key hash) and the BPE tokenizer;
* :mod:`llm_backbone`: demo GPT-NeoX training, the one TransformerLens loader (``Backbone``);
* :mod:`llm_tasks`: demo record generators, ``datasets`` loading, scoring, cheap features;
* :mod:`llm_patching`: residual extraction into zarr, SAE training text, spliced loss,
  causal reconstruction patching, the SAE fidelity guardrail.

The ``model`` argument of every method is the :class:`~llm_backbone.Backbone` that
:meth:`LanguageModality.load_backbone` returns. The ``sae`` argument is any object with
sae-lens' interface: ``encode``/``decode`` on ``[..., d_in]`` tensors and ``cfg.d_in``,
``cfg.d_sae``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd

from sae_difficulty.modalities.llm import backbone as llm_backbone
from sae_difficulty.modalities.llm import hub_text as llm_hub_text
from sae_difficulty.modalities.llm import patching as llm_patching
from sae_difficulty.modalities.llm.backbone import (
    Backbone,
    BackboneParams,
    is_hub_backbone,
    pick_device,
)
from sae_difficulty.modalities.llm.evaluation import check_both_classes, evaluate
from sae_difficulty.modalities.llm.patching import check_sae_fidelity
from sae_difficulty.modalities.llm.tasks import DATASETS, build_tasks

__all__ = [
    "Backbone",
    "BackboneParams",
    "DATASETS",
    "LanguageModality",
    "check_both_classes",
    "check_sae_fidelity",
    "is_hub_backbone",
    "pick_device",
]


class LanguageModality:
    """GPT-NeoX (Pythia) backbones, HellaSwag/SQuAD tasks, residual-stream SAEs."""

    name = "llm"
    datasets = DATASETS

    def train_backbone(self, params: dict[str, Any], out_dir: Path, seed: int) -> dict[str, Any]:
        """Train the demo backbone (``llm.backbones.<size>``, see :class:`BackboneParams`) into
        ``out_dir`` in Hugging Face format. Check :func:`is_hub_backbone` first: hub backbones are not trained."""
        return llm_backbone.train_backbone(params, out_dir, seed)

    def load_backbone(self, source: str | Path, device: str | None = None) -> Backbone:
        """A local HF directory or a hub name, as a TransformerLens model (device: cuda > mps > cpu)."""
        return llm_backbone.load_backbone(source, device)

    def build_tasks(self, dataset: str, params: dict[str, Any], out_dir: Path, seed: int) -> dict[str, Any]:
        """``records.jsonl`` + ``examples.parquet`` + ``task.json`` for "hellaswag" or "squad"."""
        return build_tasks(dataset, params, out_dir, seed)

    def evaluate(self, model: Backbone, tasks_dir: Path, params: dict[str, Any], seed: int) -> pd.DataFrame:
        """id, error, correct, metrics and ``cheap__*`` features per example (see :func:`evaluate`)."""
        return evaluate(model, tasks_dir, params, seed)

    def extract(self, model: Backbone, tasks_dir: Path, layer: int, out_zarr: Path, params: dict[str, Any]) -> dict[str, Any]:
        """Residual ``blocks.{layer}.hook_resid_post`` over the prompts into a zarr activation cache."""
        return llm_patching.extract(model, tasks_dir, layer, out_zarr, params)

    def training_activations(self, model: Backbone, layer: int, out_zarr: Path, params: dict[str, Any], seed: int) -> dict[str, Any]:
        """Token-level residuals (``train``/``heldout``) for SAE training: of held-apart text of the
        bundled corpus, or with ``params["source"] == "hub_text"`` of a hub text dataset."""
        if params.get("source") == "hub_text":
            return llm_hub_text.training_activations(model, layer, out_zarr, params, seed)
        return llm_patching.training_activations(model, layer, out_zarr, params, seed)

    def spliced_loss(self, model: Backbone, sae: Any, layer: int, params: dict[str, Any], seed: int) -> dict[str, float]:
        """Held-out loss clean / SAE-spliced / zero-ablated at ``layer``."""
        return llm_patching.spliced_loss(model, sae, layer, params, seed)

    def causal_patch(
        self, model: Backbone, sae: Any, tasks_dir: Path, layer: int, features: list[int], params: dict[str, Any], seed: int
    ) -> pd.DataFrame:
        """Long table id, feature, positions ("last"/"all"), delta, nats_recon, nats_clean, ..."""
        return llm_patching.causal_patch(model, sae, tasks_dir, layer, features, params, seed)
