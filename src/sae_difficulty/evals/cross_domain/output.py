"""The written cross-domain result (``cross_domain.json``, also ``external.json``); its JSON schema is generated."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

from sae_difficulty.evals.base import (
    Count,
    EvalOutput,
    Fraction,
    Headline,
    NumberOrNull,
    PositiveCount,
)
from sae_difficulty.evals.cross_domain.config import CrossDomainConfig


class DomainRow(EvalOutput):
    """One SAE on one domain's held-out rows."""

    sae: str
    architecture: str
    train_domain: str
    eval_domain: str
    in_domain: bool
    mse: Annotated[float, Field(ge=0)]
    explained_variance: NumberOrNull
    l0: Annotated[float, Field(ge=0)]
    l1: Annotated[float, Field(ge=0)]
    dead_fraction: Fraction
    n_rows: PositiveCount


class Gap(EvalOutput):
    """One SAE's in-domain EV minus its mean out-of-domain EV, with the block-bootstrap CI."""

    sae: str
    architecture: str
    train_domain: str
    in_domain_ev: NumberOrNull
    out_of_domain_ev: NumberOrNull
    gap: NumberOrNull
    ci_low: NumberOrNull
    ci_high: NumberOrNull


class SelectivitySummary(EvalOutput):
    """How domain-selective one SAE's live features are."""

    sae: str
    n_features: PositiveCount
    n_live: Count
    mean_selectivity: NumberOrNull
    share_selective: NumberOrNull
    preferred_counts: dict[str, Count]


class MeanGap(EvalOutput):
    """The headline: the mean gap over SAEs with its CI."""

    value: NumberOrNull
    ci_low: NumberOrNull
    ci_high: NumberOrNull
    n_boot: Count
    n_saes: PositiveCount


class CrossDomainOutput(EvalOutput):
    """Every SAE on every domain, the generalization gaps, feature selectivity and the headline."""

    config: CrossDomainConfig.document_model()  # type: ignore[valid-type]
    domains: Annotated[list[str], Field(min_length=2)]
    rows: list[DomainRow]
    gaps: list[Gap]
    selectivity: list[SelectivitySummary]
    mean_gap: MeanGap
    headline: Headline
