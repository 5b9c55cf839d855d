"""The written ground-truth result (``ground_truth.json``); its JSON schema is generated."""

from __future__ import annotations

from sae_difficulty.evals.base import (
    Count,
    EvalOutput,
    Fraction,
    NumberOrNull,
    PositiveCount,
)
from sae_difficulty.evals.ground_truth.config import GroundTruthConfig


class Classification(EvalOutput):
    """Each latent as a detector of its best-matching true feature's firing (means over latents, sae-lens)."""

    precision: Fraction
    recall: Fraction
    f1_score: Fraction
    accuracy: Fraction


class Published(EvalOutput):
    """Whether the cited SynthSAEBench claim covers this SAE (same synthetic model and L0 within its range)."""

    settings_match: bool
    claim: str
    reason: str


class GroundTruthOutput(EvalOutput):
    """One SAE scored against the true dictionary (sae-lens' ``eval_sae_on_synthetic_data`` plus per-latent detail)."""

    config: GroundTruthConfig.document_model()  # type: ignore[valid-type]
    hidden_dim: PositiveCount
    num_true_features: PositiveCount
    n_latents: PositiveCount
    n_samples: PositiveCount
    training_tokens: Count
    true_l0: float
    sae_l0: float
    mcc: Fraction
    mcc_ci_low: NumberOrNull
    mcc_ci_high: NumberOrNull
    random_mcc: Fraction
    random_mcc_sd: float
    uniqueness: Fraction
    classification: Classification
    dead_fraction: Fraction
    dense_fraction: Fraction
    shrinkage: float
    explained_variance: float
    true_recovered_fraction: Fraction
    latent_match_fraction: Fraction
    mean_best_cosine: Fraction
    published: Published
