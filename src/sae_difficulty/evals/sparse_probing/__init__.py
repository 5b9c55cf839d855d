"""SAEBench-style sparse probing: do k SAE latents predict a binary concept better than k residual dimensions?"""

from sae_difficulty.evals.base import Evaluation
from sae_difficulty.evals.sparse_probing.config import SparseProbingConfig
from sae_difficulty.evals.sparse_probing.main import (
    SparseProbingResult,
    headline,
    sparse_probe_task,
    top_k_by_mean_difference,
    train_test_split_indices,
)
from sae_difficulty.evals.sparse_probing.output import (
    FULL_K,
    REPRESENTATIONS,
    TABLE_COLUMNS,
    SparseProbingOutput,
)
from sae_difficulty.evals.sparse_probing.plot import plot_sparse_probing

EVALUATION = Evaluation("sparse_probing", SparseProbingConfig, SparseProbingOutput, headline, plot_sparse_probing, +1)

__all__ = [
    "EVALUATION",
    "FULL_K",
    "REPRESENTATIONS",
    "TABLE_COLUMNS",
    "SparseProbingConfig",
    "SparseProbingOutput",
    "SparseProbingResult",
    "headline",
    "plot_sparse_probing",
    "sparse_probe_task",
    "top_k_by_mean_difference",
    "train_test_split_indices",
]
