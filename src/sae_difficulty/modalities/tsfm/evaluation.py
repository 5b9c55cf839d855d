"""Evaluate Chronos on forecast windows: CRPS, scaled CRPS, seasonal-naive MASE and cheap features per window.

``evaluate`` - ``num_samples`` 20, ``batch_size`` 32, ``season`` 24 (MASE and the
seasonal features), ``crps_estimator`` "qd" (scoringrules; "fair" for the unbiased one),
``temperature``/``top_k``/``top_p`` (default: the model's), ``error`` ("crps": the
``error`` column, which the difficulty labels threshold, is the raw CRPS; "crps_scaled": the
CRPS over the context's mean absolute value, and the raw CRPS moves to a ``crps`` column).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from sae_difficulty.modalities.tsfm import patching
from sae_difficulty.modalities.tsfm.features import cheap_feature_table
from sae_difficulty.modalities.tsfm.runtime import batch_progress, check_context
from sae_difficulty.modalities.tsfm.tasks import read_windows
from sae_difficulty.utils.errors import InputError

# What the ``error`` column (the quantity the difficulty labels threshold) holds. Raw CRPS
# scales with the series level, so where the level drifts over time (ETTh1 falls after the
# train/test cutoff) a whole-dataset threshold can label no test window difficult; the scaled
# CRPS divides each window's CRPS by its own context's mean absolute value (Chronos's scale).
ERRORS = ("crps", "crps_scaled")


def evaluate(model: Any, tasks_dir: Path, params: dict[str, Any], seed: int) -> pd.DataFrame:
    """Per window: ``error`` = CRPS of ``num_samples`` sampled paths (mean over horizon steps,
    or its scaled form with ``error: crps_scaled``),
    ``crps_scaled`` (CRPS over the context's mean absolute value, Chronos' scale), ``mase``
    (median path vs seasonal naive) and the ``cheap__*`` context statistics. Window ``i``'s
    samples are drawn with seed ``window_seed(seed, i)``, whatever the batch size."""
    examples, contexts, targets = read_windows(tasks_dir)
    check_context(model, contexts.shape[1])
    num_samples = int(params.get("num_samples", 20))
    estimator = str(params.get("crps_estimator", "qd"))
    season = int(params.get("season", 24))
    batch_size = int(params.get("batch_size", 32))
    error_kind = str(params.get("error", "crps"))
    if error_kind not in ERRORS:
        raise InputError(f"tsfm.evaluate.error: expected one of {list(ERRORS)}, got {error_kind!r}")
    crps = np.empty(len(contexts))
    mase = np.empty(len(contexts))
    for start in batch_progress(len(contexts), batch_size, "evaluate chronos"):
        stop = min(start + batch_size, len(contexts))
        seeds = [patching.window_seed(seed, i) for i in range(start, stop)]
        samples = patching.sample_forecasts(
            model,
            contexts[start:stop],
            seeds,
            num_samples,
            targets.shape[1],
            temperature=params.get("temperature"),
            top_k=params.get("top_k"),
            top_p=params.get("top_p"),
        )
        crps[start:stop] = patching.crps_per_window(samples, targets[start:stop], estimator)
        mase[start:stop] = patching.seasonal_naive_mase(contexts[start:stop], targets[start:stop], np.median(samples, axis=1), season)
    mean_abs = np.abs(contexts).mean(axis=1)
    crps_scaled = crps / np.where(mean_abs > 0, mean_abs, 1.0)
    columns = {"id": examples["id"].to_numpy(), "error": crps, "crps_scaled": crps_scaled, "mase": mase}
    if error_kind == "crps_scaled":
        columns.update(error=crps_scaled, crps=crps)
    table = pd.DataFrame(columns)
    return pd.concat([table, cheap_feature_table(contexts, season)], axis=1)
