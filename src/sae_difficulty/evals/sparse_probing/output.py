"""The written sparse-probing result (``sparse_probing.json``); its JSON schema is generated."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from sae_difficulty.evals.base import (
    EvalOutput,
    Fraction,
    Headline,
    NumberOrNull,
    PositiveCount,
)
from sae_difficulty.evals.sparse_probing.config import SparseProbingConfig

FULL_K = -1  # the ``k`` of the dense probe on all columns
REPRESENTATIONS = ("sae", "raw")


class ProbeRow(EvalOutput):
    """One probe: a task, a representation and k (``FULL_K`` = dense; ``selected`` columns best first)."""

    task: str
    representation: Literal["sae", "raw"]
    k: Annotated[int, Field(ge=FULL_K)]
    n_features: PositiveCount
    accuracy: Fraction
    ci_low: Fraction
    ci_high: Fraction
    delta_vs_raw: NumberOrNull
    delta_ci_low: NumberOrNull
    delta_ci_high: NumberOrNull
    selected: list[Annotated[int, Field(ge=0)]] | None
    n_train: Annotated[int, Field(ge=2)]
    n_test: Annotated[int, Field(ge=2)]


TABLE_COLUMNS = tuple(ProbeRow.model_fields)


class SparseProbingOutput(EvalOutput):
    """Every task's probes and the headline (mean top-1 gain of SAE latents over residual dimensions)."""

    config: SparseProbingConfig.document_model()  # type: ignore[valid-type]
    tasks: Annotated[list[str], Field(min_length=1)]
    rows: list[ProbeRow]
    headline: Headline
