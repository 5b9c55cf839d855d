"""Faithfulness of a small SAE-feature circuit against random feature sets (Marks et al. 2024)."""

from sae_difficulty.evals.base import Evaluation
from sae_difficulty.evals.circuit.config import CircuitConfig
from sae_difficulty.evals.circuit.faithfulness import faithfulness_curve, rank_nodes
from sae_difficulty.evals.circuit.main import (
    BehaviourExamples,
    CircuitResult,
    circuit_metric_fn,
    clean_metric,
    headline,
    mean_feature_codes,
    node_index,
    run_circuit_faithfulness,
    sae_feature_attribution,
    select_confident_examples,
    target_log_prob,
)
from sae_difficulty.evals.circuit.output import (
    CURVE_COLUMNS,
    METRIC_NAME,
    RANKING,
    CircuitOutput,
)
from sae_difficulty.evals.circuit.plot import plot_faithfulness

EVALUATION = Evaluation("circuit", CircuitConfig, CircuitOutput, headline, plot_faithfulness, +1)

__all__ = [
    "CURVE_COLUMNS",
    "EVALUATION",
    "METRIC_NAME",
    "RANKING",
    "BehaviourExamples",
    "CircuitConfig",
    "CircuitOutput",
    "CircuitResult",
    "circuit_metric_fn",
    "clean_metric",
    "faithfulness_curve",
    "headline",
    "mean_feature_codes",
    "node_index",
    "plot_faithfulness",
    "rank_nodes",
    "run_circuit_faithfulness",
    "sae_feature_attribution",
    "select_confident_examples",
    "target_log_prob",
]
