"""The written circuit-faithfulness result (``circuit.json``); its JSON schema is generated."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from sae_difficulty.evals.base import Count, EvalOutput, NumberOrNull, PositiveCount
from sae_difficulty.evals.circuit.config import CircuitConfig

METRIC_NAME = "target_log_prob"
RANKING = "abs_attribution"


class CurvePoint(EvalOutput):
    """Faithfulness of the top-K circuit and of random K-sets at one K; the gap's bootstrap CI."""

    k: PositiveCount
    faithfulness_top: float
    faithfulness_random_mean: float
    faithfulness_random_sd: Annotated[float, Field(ge=0)]
    gap: float
    gap_ci_low: NumberOrNull
    gap_ci_high: NumberOrNull


CURVE_COLUMNS = tuple(CurvePoint.model_fields)


class TopNode(EvalOutput):
    """One of the attribution-ranked SAE features (rank 0 = largest |attribution|)."""

    rank: Count
    layer: Count
    feature: Count
    attribution: float


class CircuitOutput(EvalOutput):
    """Faithfulness curve of attribution-ranked feature circuits vs random feature sets."""

    config: CircuitConfig.document_model()  # type: ignore[valid-type]
    metric: Literal["target_log_prob"]
    ranking: Literal["abs_attribution"]
    layers: Annotated[list[Count], Field(min_length=1)]
    n_examples: Annotated[int, Field(ge=2)]
    n_nodes: PositiveCount
    clean_metric: float
    full_metric: float
    empty_metric: float
    curve: Annotated[list[CurvePoint], Field(min_length=1)]
    top_nodes: list[TopNode]
