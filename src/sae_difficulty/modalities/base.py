"""The Modality protocol: what an adapter for one kind of foundation model provides.

Both adapters (``llm.LanguageModality`` and ``tsfm.TimeSeriesModality``) satisfy it,
so every rule script calls the same methods and the shared core sees the same
shapes, whatever the model.

On-disk contracts (the rule scripts and the SAE stage rely on them):

* tasks dir: ``records.jsonl`` (the dataset's own schema, one record per line, each
  with a unique string ``id``) and ``examples.parquet`` with columns
  ``id`` (str), ``split`` ("train"/"test"), ``fold`` (int, CV fold for out-of-fold
  probes; blocked in time for the TSFM).
* evaluation table (``evaluate``): one row per example in tasks order with ``id``,
  ``error`` (float: 1-correct for the LM, CRPS for the TSFM; larger = worse),
  optional extra metric columns (``correct``, ``f1``, ``mase``, ...), and the cheap
  features as columns named ``cheap__<name>`` (finite floats).
* activation cache (``extract``): a zarr v3 group with float32 arrays
  ``last`` [N, d] (boundary position: last prompt token / last context step),
  ``mean`` [N, d] (mean over prompt tokens / context steps), ``max`` [N, d]
  (elementwise maximum over the same positions), ``tokens`` [T, d]
  (every prompt/context position of every example, concatenated in example order)
  and int64 ``offsets`` [N+1] (example i owns ``tokens[offsets[i]:offsets[i+1]]``,
  so ``tokens[offsets[i+1]-1] == last[i]``).
* SAE training cache (``training_activations``): a zarr v3 group with float32
  ``train`` [T, d] and ``heldout`` [H, d], chunked by rows.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import pandas as pd


@runtime_checkable
class Modality(Protocol):
    """One kind of foundation model, seen through the operations the study needs."""

    name: str

    def train_backbone(self, params: dict[str, Any], out_dir: Path, seed: int) -> dict[str, Any]:
        """Train the demo backbone described by ``params`` and save it in Hugging Face format
        under ``out_dir``; return a summary (parameter count, held-out loss, ...)."""

    def load_backbone(self, source: str | Path, device: str | None = None) -> Any:
        """Load a backbone by hub name (paper profile) or local HF directory (demo)."""

    def build_tasks(self, dataset: str, params: dict[str, Any], out_dir: Path, seed: int) -> dict[str, Any]:
        """Write the task records and the split table of ``dataset`` into ``out_dir``."""

    def evaluate(self, model: Any, tasks_dir: Path, params: dict[str, Any], seed: int) -> pd.DataFrame:
        """Run the backbone on every task record: error, metrics and cheap features."""

    def extract(self, model: Any, tasks_dir: Path, layer: int, out_zarr: Path, params: dict[str, Any]) -> dict[str, Any]:
        """Stream pooled and token-level activations at ``layer`` into ``out_zarr``."""

    def training_activations(self, model: Any, layer: int, out_zarr: Path, params: dict[str, Any], seed: int) -> dict[str, Any]:
        """Write token-level activations for SAE training (``train``/``heldout``)."""

    def spliced_loss(self, model: Any, sae: Any, layer: int, params: dict[str, Any], seed: int) -> dict[str, float]:
        """Model loss clean, with the SAE reconstruction spliced in, and zero-ablated."""

    def causal_patch(
        self, model: Any, sae: Any, tasks_dir: Path, layer: int, features: list[int], params: dict[str, Any], seed: int
    ) -> pd.DataFrame:
        """Per example and feature: Δloss of ablating the feature in the reconstruction,
        at the boundary position only and at all positions."""
