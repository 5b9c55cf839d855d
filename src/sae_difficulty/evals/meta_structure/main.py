"""Meta-structure of an SAE dictionary: do its decoder directions share a few building blocks?

SAEBench-style meta-SAE evaluation (Bussmann et al. 2025, "Showing SAE latents are not
atomic using meta-SAEs"): a small TopK SAE, the *meta-SAE*, is trained on the SAE's
decoder rows (unit-normalized directions, one training example each) with the project's
own trainer (:func:`sae_difficulty.saes.training.fit_sae`, sae-lens ``TopKTrainingSAE``).
If latents are compositions of a few shared meta-directions, a meta-SAE with far fewer
latents than the dictionary and ``k`` active per row reconstructs them well.

Reported: the explained variance (``1 - SSE/SST``, per-dimension means) of the decoder
rows by their meta-SAE, and the same for a baseline: a meta-SAE with the same recipe
trained on random unit directions of the same shape, which have no shared structure
(what any dictionary of that size and sparsity explains by chance). The headline is the
difference, with a percentile bootstrap CI that resamples each set's rows independently
(the ratio estimator of ``SSE/SST`` around the full-sample mean, as the cross-domain
evaluation does).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import torch

from sae_difficulty.core import sae_metrics
from sae_difficulty.core.stats import bootstrap_indices, percentile_interval
from sae_difficulty.evals.base import EvalResult
from sae_difficulty.evals.meta_structure.config import MetaStructureConfig
from sae_difficulty.evals.meta_structure.output import ROW_SETS, MetaStructureOutput
from sae_difficulty.saes.cache import stream_batches
from sae_difficulty.saes.training import SAETrainingSpec, fit_sae
from sae_difficulty.utils.errors import InputError

CLAIM = (
    "SAE latents are not atomic: a small meta-SAE reconstructs the decoder directions better than random "
    "directions of the same shape (Bussmann et al. 2025, meta-SAEs; SAEBench)"
)


@dataclass
class RowSetResult:
    """One set of rows and its meta-SAE's reconstruction, per row."""

    rows: np.ndarray  # [n, d_in] unit rows
    row_sse: np.ndarray  # [n] squared reconstruction error
    row_sst: np.ndarray  # [n] squared distance to the set's per-dimension mean
    mean_l0: float
    dead_fraction: float
    training: dict[str, Any]

    @property
    def explained_variance(self) -> float:
        return float(1.0 - self.row_sse.sum() / self.row_sst.sum())

    def replicates(self, resamples: np.ndarray) -> np.ndarray:
        """Explained variance of every bootstrap resample of the rows [n_boot]."""
        return 1.0 - self.row_sse[resamples].sum(axis=1) / self.row_sst[resamples].sum(axis=1)


@dataclass
class MetaStructureResult(EvalResult):
    """The meta-SAE fits of the decoder rows and of the random baseline, with bootstrap replicates."""

    config: MetaStructureConfig
    n_meta_latents: int
    sets: dict[str, RowSetResult]
    replicates: dict[str, np.ndarray] = field(repr=False)

    OUTPUT = MetaStructureOutput

    def fit(self, name: str) -> dict[str, Any]:
        """One set's summary (a ``fits`` entry of the document)."""
        low, high = percentile_interval(self.replicates[name])
        row_set = self.sets[name]
        return {
            "rows": name,
            "explained_variance": row_set.explained_variance,
            "ci_low": low,
            "ci_high": high,
            "fvu": 1.0 - row_set.explained_variance,
            "mean_l0": row_set.mean_l0,
            "dead_fraction": row_set.dead_fraction,
            "training": row_set.training,
        }

    def difference(self) -> dict[str, Any]:
        """Explained variance of the decoder rows minus the random rows', with its CI."""
        low, high = percentile_interval(self.replicates["decoder"] - self.replicates["random"])
        value = self.sets["decoder"].explained_variance - self.sets["random"].explained_variance
        return {"value": value, "ci_low": low, "ci_high": high}

    def document(self) -> dict[str, Any]:
        """The JSON content (see :class:`MetaStructureOutput`)."""
        decoder = self.sets["decoder"].rows
        return {
            "config": self.config.to_dict(),
            "n_rows": int(decoder.shape[0]),
            "d_in": int(decoder.shape[1]),
            "n_meta_latents": self.n_meta_latents,
            "fits": [self.fit(name) for name in ROW_SETS],
            "difference": self.difference(),
        }

    def table(self) -> pd.DataFrame:
        """One row per set of rows, and the ``difference`` row (decoder - random)."""
        rows = [{key: value for key, value in self.fit(name).items() if key != "training"} for name in ROW_SETS]
        rows.append({"rows": "difference", "explained_variance": self.difference()["value"],
                     "ci_low": self.difference()["ci_low"], "ci_high": self.difference()["ci_high"]})  # fmt: skip
        return pd.DataFrame(rows, columns=["rows", "explained_variance", "ci_low", "ci_high", "fvu", "mean_l0", "dead_fraction"])


def unit_rows(rows: Any, name: str) -> np.ndarray:
    """``rows`` [n, d] scaled to unit norm (float64); one-line InputError for a bad or zero row."""
    array = np.asarray(rows, dtype=np.float64)
    if array.ndim != 2 or array.shape[0] < 2 or array.shape[1] < 1:
        raise InputError(f"{name}: expected a 2-D array of at least 2 rows [n, d_in], got shape {array.shape}")
    norms = np.linalg.norm(array, axis=1, keepdims=True)
    if not np.all(np.isfinite(array)) or np.any(norms == 0):
        raise InputError(f"{name}: expected finite, non-zero rows")
    return array / norms


def random_rows(n: int, d: int, seed: int) -> np.ndarray:
    """Seeded random unit directions [n, d] (Gaussian rows, normalized): the structure-free baseline."""
    return unit_rows(np.random.default_rng([int(seed), 1]).standard_normal((n, d)), "random rows")


def fit_meta_sae(rows: np.ndarray, config: MetaStructureConfig) -> RowSetResult:
    """Train a TopK meta-SAE on ``rows`` (unit, [n, d]) with the project's trainer; measure its reconstruction."""
    n, d = rows.shape
    if config.batch_size > n:
        raise InputError(f"sae_evals.meta_structure.batch_size: expected at most the {n} decoder rows, got {config.batch_size}")
    if config.k > config.expansion * d:
        raise InputError(f"sae_evals.meta_structure.k: expected at most the {config.expansion * d} meta-latents, got {config.k}")
    spec = SAETrainingSpec(
        architecture="topk", expansion=config.expansion, k=config.k, lr=config.lr, seed=config.seed,
        training_tokens=config.epochs * n, batch_size=config.batch_size,
        normalize_activations="none",  # the rows already have unit norm
    )  # fmt: skip
    source = np.ascontiguousarray(rows, dtype=np.float32)
    # an in-memory array is one chunk: the mixing buffer holds all rows plus a batch
    buffered = -(-n // config.batch_size) + 1
    batches = stream_batches(source, config.batch_size, seed=config.seed, max_batches_in_memory=buffered)
    trained = fit_sae(batches, spec, d)
    with torch.no_grad():
        x = torch.from_numpy(source)
        codes = trained.sae.encode(x)
        x_hat = trained.sae.decode(codes).double().numpy()
    codes_np = codes.double().numpy()
    centred = rows - rows.mean(axis=0)
    firing = sae_metrics.feature_frequencies(codes_np)
    summary = trained.summary
    training = {"n_steps": summary["n_steps"], "n_tokens": summary["n_tokens"], "final_losses": summary["final_losses"]}
    return RowSetResult(
        rows=rows,
        row_sse=np.einsum("ij,ij->i", rows - x_hat, rows - x_hat),
        row_sst=np.einsum("ij,ij->i", centred, centred),
        mean_l0=sae_metrics.l0(codes_np),
        dead_fraction=sae_metrics.dead_fraction(firing),
        training=training,
    )


def evaluate_meta_structure(decoder_rows: Any, config: MetaStructureConfig | None = None) -> MetaStructureResult:
    """Meta-SAE explained variance of ``decoder_rows`` [d_sae, d_in] against random rows of the same shape."""
    config = config or MetaStructureConfig()
    decoder = unit_rows(decoder_rows, "decoder_rows")
    n, d = decoder.shape
    sets = {"decoder": fit_meta_sae(decoder, config), "random": fit_meta_sae(random_rows(n, d, config.seed), config)}
    rng = np.random.default_rng([config.seed, 2])
    # the two sets are independent samples: each gets its own resamples
    replicates = {name: sets[name].replicates(bootstrap_indices(n, config.n_boot, rng)) for name in ROW_SETS}
    return MetaStructureResult(config, config.expansion * d, sets, replicates)


def headline(result: MetaStructureResult) -> dict[str, Any]:
    """Explained variance of the decoder rows minus of random rows by same-recipe meta-SAEs (null 0)."""
    difference = result.difference()
    return {
        "metric": "meta_sae_explained_variance_decoder_minus_random",
        "value": difference["value"],
        "ci_low": difference["ci_low"],
        "ci_high": difference["ci_high"],
        "null": 0.0,
        "claim": CLAIM,
    }
