"""Encode fidelity: an SAE loaded from another format must reproduce its source's own codes.

Not a store node of its own: every stage that loads an SAE runs it and records the
result in its ``checks.json``.
"""

from sae_difficulty.evals.base import Evaluation
from sae_difficulty.evals.encode_fidelity.config import EncodeFidelityConfig
from sae_difficulty.evals.encode_fidelity.formats import (
    DICTIONARY_LEARNING_FILENAME,
    FORMATS,
    dictionary_learning_disk_loader,
    load_external_sae,
    save_dictionary_learning,
    source_codes,
    sparsify_disk_loader,
)
from sae_difficulty.evals.encode_fidelity.main import (
    EncodeFidelityResult,
    check_encode_fidelity,
    headline,
    require_encode_fidelity,
)
from sae_difficulty.evals.encode_fidelity.output import EncodeFidelityOutput
from sae_difficulty.evals.encode_fidelity.plot import plot_encode_fidelity

EVALUATION = Evaluation("encode_fidelity", EncodeFidelityConfig, EncodeFidelityOutput, headline, plot_encode_fidelity, 0)

__all__ = [
    "DICTIONARY_LEARNING_FILENAME",
    "EVALUATION",
    "FORMATS",
    "EncodeFidelityConfig",
    "EncodeFidelityOutput",
    "EncodeFidelityResult",
    "check_encode_fidelity",
    "dictionary_learning_disk_loader",
    "headline",
    "load_external_sae",
    "plot_encode_fidelity",
    "require_encode_fidelity",
    "save_dictionary_learning",
    "source_codes",
    "sparsify_disk_loader",
]
