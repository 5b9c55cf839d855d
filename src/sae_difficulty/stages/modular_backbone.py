"""Stage `modular_backbone`: train the modular-addition transformer until it groks.

Writes ``model/`` (``config.json`` + ``model.safetensors``), ``training.json`` (the
summary: steps, memorization and grokking steps, final accuracies),
``training_curves.parquet`` and ``training_curves.png``. Fails with one line when the
final test accuracy is below ``min_test_accuracy``.
"""

from __future__ import annotations

import logging
import time

from sae_difficulty.modalities.modular import model as modular
from sae_difficulty.pipeline.artifacts import MODEL_DIR
from sae_difficulty.pipeline.runner import NodeContext
from sae_difficulty.utils.io import write_json, write_parquet

log = logging.getLogger(__name__)

TRAINING = "training.json"
CURVES = "training_curves.parquet"
CURVES_FIGURE = "training_curves.png"


def build(ctx: NodeContext) -> None:
    spec = modular.GrokkingSpec.from_dict(ctx.params)
    started = time.perf_counter()
    result = modular.train_grokking(spec, progress=True)
    # wall time goes to the log (and the manifest), not the JSON, so equal specs give equal bytes
    log.info("modular backbone: %d steps in %.1f s, final test accuracy %.4f", result.summary["steps"],
             time.perf_counter() - started, result.summary["final"]["test_accuracy"])  # fmt: skip
    modular.save_model(result.model, spec, ctx.out / MODEL_DIR)
    write_json(ctx.out / TRAINING, result.summary)
    write_parquet(ctx.out / CURVES, result.curves)
    modular.plot_training_curves(result.curves, ctx.out / CURVES_FIGURE,
                                 f"(a + b) mod {spec.p}: {spec.n_layers}-layer transformer, train fraction {spec.train_fraction}")  # fmt: skip
