"""The written encode-fidelity result (``checks.json`` of every stage that loads an SAE); schema generated."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from sae_difficulty.evals.base import EvalOutput, Fraction, PositiveCount
from sae_difficulty.evals.encode_fidelity.config import EncodeFidelityConfig


class EncodeFidelityOutput(EvalOutput):
    """Agreement of a loaded SAE's codes with its source format's own encoding (summary; per-row in the table)."""

    path: str
    format: Literal["saelens", "dictionary_learning", "sparsify"]
    config: EncodeFidelityConfig.document_model()  # type: ignore[valid-type]
    n_rows: PositiveCount
    d_sae: PositiveCount
    max_abs_diff: Annotated[float, Field(ge=0)]
    fraction_rows_matching: Fraction
    mean_active_jaccard: Fraction
    mean_l0_sae: float
    mean_l0_source: float
    passed: bool
