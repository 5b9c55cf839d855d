"""The written SAE-vs-skip-transcoder result (``transcoder.json``); its JSON schema is generated."""

from __future__ import annotations

from typing import Any, Literal

from sae_difficulty.evals.base import EvalOutput, NumberOrNull, PositiveCount
from sae_difficulty.evals.transcoder.config import TranscoderComparisonConfig

MODEL_NAMES = ("sae", "skip_transcoder")
DIFFERENCE_METRICS = ("explained_variance", "l0", "delta_loss")


class ModelStats(EvalOutput):
    """One model on held-out data: reconstruction of its own target, sparsity, spliced loss (95 % CIs)."""

    architecture: str
    explained_variance: float
    explained_variance_ci_low: NumberOrNull
    explained_variance_ci_high: NumberOrNull
    fvu: float
    mse: float
    l0: float
    l0_ci_low: NumberOrNull
    l0_ci_high: NumberOrNull
    dead_fraction: float
    loss_spliced: float
    delta_loss: float
    delta_loss_ci_low: NumberOrNull
    delta_loss_ci_high: NumberOrNull
    fraction_recovered: NumberOrNull


class Interval(EvalOutput):
    value: float
    ci_low: NumberOrNull
    ci_high: NumberOrNull


class Models(EvalOutput):
    sae: ModelStats
    skip_transcoder: ModelStats


class Differences(EvalOutput):
    """Skip-transcoder minus SAE, paired bootstrap CIs."""

    explained_variance: Interval
    l0: Interval
    delta_loss: Interval


class Hooks(EvalOutput):
    mlp_in: str
    mlp_out: str


class TranscoderComparisonOutput(EvalOutput):
    """Per-model metrics and transcoder - SAE differences."""

    eval: Literal["transcoder_comparison"]
    config: TranscoderComparisonConfig.document_model()  # type: ignore[valid-type]
    d_model: PositiveCount
    d_sae: PositiveCount
    n_heldout_rows: PositiveCount
    n_splice_sequences: PositiveCount
    n_splice_tokens: PositiveCount
    loss_clean: float
    loss_zero_ablation: float
    delta_loss_zero_ablation: float
    models: Models
    differences: Differences
    training: dict[str, Any] | None
    hooks: Hooks
