"""Steering with an SAE decoder direction vs a diff-of-means direction, at matched fluency (AxBench-style)."""

from sae_difficulty.evals.base import Evaluation
from sae_difficulty.evals.steering.classifier import (
    CodeLikenessClassifier,
    SuccessClassifier,
    chop,
)
from sae_difficulty.evals.steering.config import SteeringConfig
from sae_difficulty.evals.steering.generation import continuation_perplexity, generate
from sae_difficulty.evals.steering.main import (
    CLAIM,
    HEADLINE_PAIR,
    RANDOM_METHOD,
    SteeringResult,
    headline,
    matched_success,
    random_direction,
    run_steering,
    scan_prompts,
)
from sae_difficulty.evals.steering.output import SteeringOutput
from sae_difficulty.evals.steering.plot import plot_steering

EVALUATION = Evaluation("steering", SteeringConfig, SteeringOutput, headline, plot_steering, -1)

__all__ = [
    "CLAIM",
    "EVALUATION",
    "HEADLINE_PAIR",
    "RANDOM_METHOD",
    "CodeLikenessClassifier",
    "SteeringConfig",
    "SteeringOutput",
    "SteeringResult",
    "SuccessClassifier",
    "chop",
    "continuation_perplexity",
    "generate",
    "headline",
    "matched_success",
    "plot_steering",
    "random_direction",
    "run_steering",
    "scan_prompts",
]
