"""Ground truth: an SAE trained on sae-lens synthetic data, scored against the true feature dictionary."""

from sae_difficulty.evals.base import Evaluation
from sae_difficulty.evals.ground_truth.config import GroundTruthConfig
from sae_difficulty.evals.ground_truth.main import (
    PUBLISHED_CLAIM,
    PUBLISHED_MCC_LOW,
    GroundTruthResult,
    evaluate_ground_truth,
    headline,
    random_dictionary_mcc,
)
from sae_difficulty.evals.ground_truth.output import GroundTruthOutput
from sae_difficulty.evals.ground_truth.plot import plot_ground_truth

# claim_sign +1: where the SynthSAEBench settings match, the claim puts the MCC at or above
# the published range's lower end; the stage writes 0 (no claim) everywhere else.
EVALUATION = Evaluation("ground_truth", GroundTruthConfig, GroundTruthOutput, headline, plot_ground_truth, +1)

__all__ = [
    "EVALUATION",
    "PUBLISHED_CLAIM",
    "PUBLISHED_MCC_LOW",
    "GroundTruthConfig",
    "GroundTruthOutput",
    "GroundTruthResult",
    "evaluate_ground_truth",
    "headline",
    "plot_ground_truth",
    "random_dictionary_mcc",
]
