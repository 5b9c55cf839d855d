"""The time-series adapter: Chronos-T5 on ETTh1 forecast windows (``TimeSeriesModality``).

It satisfies :class:`sae_difficulty.modalities.base.Modality` and only delegates; the work
lives in its siblings, each documenting the ``params`` keys it reads:
``backbone`` (build/train/save/load a Chronos-T5; the training loop is written here because
the chronos-forecasting wheel ships no trainer), ``data`` (ETTh1, windows, splits,
synthetic series, the training pool), ``tasks`` (window records), ``evaluation`` (CRPS,
MASE), ``features`` (cheap statistics), ``activations`` (encoder caches), ``sae_in_loop``
(spliced loss and causal ablations) and ``patching`` (encoder hooks, per-window-seeded
sampling, CRPS, SAE edits).

``train_backbone`` - size: ``d_model`` 64, ``n_layers`` 2 (encoder and decoder each;
``n_decoder_layers`` overrides), ``n_heads`` 4, ``d_kv`` d_model/n_heads, ``d_ff`` 256,
``dropout`` 0.1; Chronos tokenizer: ``context_length`` 128, ``prediction_length`` 24,
``n_tokens`` 1024 (uniform bins + 2 special tokens + 1), ``low_limit``/``high_limit``
-15/15 (mean-scaled units), sampling defaults ``num_samples`` 20, ``temperature`` 1,
``top_k`` 50, ``top_p`` 1; optimisation: ``train_steps`` 300, ``batch_size`` 32, ``lr``
1e-3 (tiny models want 5e-3..1e-2), ``weight_decay`` 0.01, ``warmup_steps`` 0,
``grad_clip`` 1, ``heldout_windows`` 128, ``device`` auto; ``hub`` (a hub name: nothing is
trained, see :func:`is_hub_backbone`). Training pool (also read by
``training_activations`` and ``spliced_loss``, which must get the same values):
``synthetic_series`` 200, ``synthetic_length`` 1024, ``synthetic_seed`` 0,
``synthetic_max_kernels`` 5, ``heldout_fraction`` 0.1, ``etth1_probability`` 0.5 (share of
training windows drawn from ETTh1), ``etth1`` {``enabled`` true, ``path``
resources/ETTh1.csv, ``target`` OT, ``pretrain_fraction`` 0.4 - the SAME cutoff as the tasks,
before which no window is evaluated, so the backbone never sees an evaluated time step}.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd

from sae_difficulty.modalities.tsfm import activations, evaluation, sae_in_loop, tasks
from sae_difficulty.modalities.tsfm.backbone import (
    is_hub_backbone,
    load_chronos,
    train_backbone,
)
from sae_difficulty.modalities.tsfm.tasks import read_windows

__all__ = ["TimeSeriesModality", "is_hub_backbone", "read_windows"]


class TimeSeriesModality:
    """Chronos-T5 forecasting ETTh1 windows; each method's parameters are documented where its work lives."""

    name = "tsfm"

    def train_backbone(self, params: dict[str, Any], out_dir: Path, seed: int) -> dict[str, Any]:
        """Train the demo Chronos-T5 and save it in HF format (:func:`.backbone.train_backbone`)."""
        return train_backbone(params, out_dir, seed)

    def load_backbone(self, source: str | Path, device: str | None = None) -> Any:
        """``ChronosPipeline.from_pretrained`` of a hub name or local dir (float32; cuda > mps > cpu)."""
        return load_chronos(source, device)

    def build_tasks(self, dataset: str, params: dict[str, Any], out_dir: Path, seed: int) -> dict[str, Any]:
        """Rolling windows split by time (:func:`.tasks.build_tasks`); ``seed`` is unused: nothing here is random."""
        return tasks.build_tasks(dataset, params, out_dir, seed)

    def evaluate(self, model: Any, tasks_dir: Path, params: dict[str, Any], seed: int) -> pd.DataFrame:
        """CRPS, MASE and cheap features per window (:func:`.evaluation.evaluate`)."""
        return evaluation.evaluate(model, tasks_dir, params, seed)

    def extract(self, model: Any, tasks_dir: Path, layer: int, out_zarr: Path, params: dict[str, Any]) -> dict[str, Any]:
        """Encoder block ``layer`` at every context position of every window (:func:`.activations.extract`)."""
        return activations.extract(model, tasks_dir, layer, out_zarr, params)

    def training_activations(self, model: Any, layer: int, out_zarr: Path, params: dict[str, Any], seed: int) -> dict[str, Any]:
        """SAE training cache from the training pool (:func:`.activations.training_activations`)."""
        return activations.training_activations(model, layer, out_zarr, params, seed)

    def spliced_loss(self, model: Any, sae: Any, layer: int, params: dict[str, Any], seed: int) -> dict[str, float]:
        """CRPS and cross-entropy with the SAE spliced in (:func:`.sae_in_loop.spliced_loss`)."""
        return sae_in_loop.spliced_loss(model, sae, layer, params, seed)

    def causal_patch(
        self, model: Any, sae: Any, tasks_dir: Path, layer: int, features: list[int], params: dict[str, Any], seed: int
    ) -> pd.DataFrame:
        """Per-window CRPS change of ablating each feature (:func:`.sae_in_loop.causal_patch`)."""
        return sae_in_loop.causal_patch(model, sae, tasks_dir, layer, features, params, seed)
