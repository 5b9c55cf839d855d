"""Cross-domain generalization of SAEs: does an SAE trained on prose reconstruct code (and back)?"""

from sae_difficulty.evals.base import Evaluation
from sae_difficulty.evals.cross_domain.config import CrossDomainConfig
from sae_difficulty.evals.cross_domain.contexts import top_contexts_markdown
from sae_difficulty.evals.cross_domain.main import (
    SELECTIVE_THRESHOLD,
    CrossDomainResult,
    evaluate_cross_domain,
    feature_selectivity,
    headline,
    reconstruction_metrics,
)
from sae_difficulty.evals.cross_domain.output import CrossDomainOutput
from sae_difficulty.evals.cross_domain.plot import plot_cross_domain

EVALUATION = Evaluation("cross_domain", CrossDomainConfig, CrossDomainOutput, headline, plot_cross_domain, +1)

__all__ = [
    "EVALUATION",
    "SELECTIVE_THRESHOLD",
    "CrossDomainConfig",
    "CrossDomainOutput",
    "CrossDomainResult",
    "evaluate_cross_domain",
    "feature_selectivity",
    "headline",
    "plot_cross_domain",
    "reconstruction_metrics",
    "top_contexts_markdown",
]
