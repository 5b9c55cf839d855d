"""SAE versus skip-transcoder on the same MLP layer, same recipe, same token budget (Paulo et al. 2025)."""

from sae_difficulty.evals.base import Evaluation
from sae_difficulty.evals.transcoder.activations import hook_names, mlp_io
from sae_difficulty.evals.transcoder.config import TranscoderComparisonConfig
from sae_difficulty.evals.transcoder.main import (
    HEADLINE_CLAIM,
    TranscoderComparisonResult,
    evaluate_pair,
    headline,
)
from sae_difficulty.evals.transcoder.output import (
    DIFFERENCE_METRICS,
    MODEL_NAMES,
    TranscoderComparisonOutput,
)
from sae_difficulty.evals.transcoder.plot import plot_transcoder_comparison
from sae_difficulty.evals.transcoder.training import (
    DECODER_INIT_NORM,
    load_pair,
    save_pair,
    train_pair,
)

EVALUATION = Evaluation("transcoder", TranscoderComparisonConfig, TranscoderComparisonOutput, headline,
                        plot_transcoder_comparison, +1)  # fmt: skip

__all__ = [
    "DECODER_INIT_NORM",
    "DIFFERENCE_METRICS",
    "EVALUATION",
    "HEADLINE_CLAIM",
    "MODEL_NAMES",
    "TranscoderComparisonConfig",
    "TranscoderComparisonOutput",
    "TranscoderComparisonResult",
    "evaluate_pair",
    "headline",
    "hook_names",
    "load_pair",
    "mlp_io",
    "plot_transcoder_comparison",
    "save_pair",
    "train_pair",
]
