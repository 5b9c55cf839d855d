"""The written meta-structure result (``meta_structure.json``); its JSON schema is generated."""

from __future__ import annotations

from typing import Any, Literal

from sae_difficulty.evals.base import EvalOutput, Fraction, NumberOrNull, PositiveCount
from sae_difficulty.evals.meta_structure.config import MetaStructureConfig

ROW_SETS = ("decoder", "random")


class RowSetFit(EvalOutput):
    """How well the meta-SAE trained on one set of rows reconstructs those rows (95 % bootstrap CI over rows)."""

    rows: Literal["decoder", "random"]
    explained_variance: float
    ci_low: NumberOrNull
    ci_high: NumberOrNull
    fvu: float
    mean_l0: float
    dead_fraction: Fraction
    training: dict[str, Any]


class Difference(EvalOutput):
    """Explained variance on the decoder rows minus on the random rows."""

    value: float
    ci_low: NumberOrNull
    ci_high: NumberOrNull


class MetaStructureOutput(EvalOutput):
    """Decoder variance explained by a small meta-SAE, against a meta-SAE on random directions."""

    config: MetaStructureConfig.document_model()  # type: ignore[valid-type]
    n_rows: PositiveCount
    d_in: PositiveCount
    n_meta_latents: PositiveCount
    fits: list[RowSetFit]
    difference: Difference
