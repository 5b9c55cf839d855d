"""Meta-structure: a small meta-SAE on an SAE's decoder rows, against random directions (Bussmann et al. 2025)."""

from sae_difficulty.evals.base import Evaluation
from sae_difficulty.evals.meta_structure.config import MetaStructureConfig
from sae_difficulty.evals.meta_structure.main import (
    CLAIM,
    MetaStructureResult,
    evaluate_meta_structure,
    fit_meta_sae,
    headline,
    random_rows,
    unit_rows,
)
from sae_difficulty.evals.meta_structure.output import ROW_SETS, MetaStructureOutput
from sae_difficulty.evals.meta_structure.plot import plot_meta_structure

EVALUATION = Evaluation("meta_structure", MetaStructureConfig, MetaStructureOutput, headline, plot_meta_structure, +1)

__all__ = [
    "CLAIM",
    "EVALUATION",
    "ROW_SETS",
    "MetaStructureConfig",
    "MetaStructureOutput",
    "MetaStructureResult",
    "evaluate_meta_structure",
    "fit_meta_sae",
    "headline",
    "plot_meta_structure",
    "random_rows",
    "unit_rows",
]
