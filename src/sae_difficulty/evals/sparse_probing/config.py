"""Settings of sparse probing (``sae_evals.sparse_probing``; the stage adds ``test_fraction``)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sae_difficulty.evals.base import EvalConfig, integer, integers, number


@dataclass(frozen=True)
class SparseProbingConfig(EvalConfig):
    """``ks``: probe sizes (distinct integers >= 1; the dense probe is always added);
    ``n_boot``: bootstrap resamples of the test set; ``C``: inverse L2 strength of the
    logistic regression; ``seed``; ``max_iter``: solver iterations."""

    NAME = "sparse_probing"

    ks: tuple[int, ...] = integers((1, 2, 5), minimum=1, doc="probe sizes")
    n_boot: int = integer(1000, minimum=1, doc="bootstrap resamples of the test set")
    C: float = number(1.0, minimum=0, exclusive_minimum=True, doc="inverse L2 strength")
    seed: int = integer(0, minimum=0)
    max_iter: int = integer(2000, minimum=1, doc="solver iterations")

    def to_dict(self) -> dict[str, Any]:
        return {**super().to_dict(), "C": float(self.C)}
