"""The written steering result (``steering.json``); its JSON schema is generated."""

from __future__ import annotations

from sae_difficulty.evals.base import EvalOutput, NumberOrNull
from sae_difficulty.evals.steering.config import SteeringConfig


class ScannedPrompt(EvalOutput):
    """One candidate prompt: its unsteered success rate and whether (and why) it was kept."""

    prompt_index: int
    prompt: str
    baseline_success: float
    selected: bool
    reason: str


class DirectionCosine(EvalOutput):
    method_a: str
    method_b: str
    cosine: float


class CurvePoint(EvalOutput):
    """One (method, coefficient): success rate and fluency over the kept prompts."""

    method: str
    coefficient: float
    success_rate: float
    mean_log_perplexity: float
    perplexity: float
    within_budget: bool
    matched: bool


class PromptPoint(EvalOutput):
    """One (method, coefficient, prompt)."""

    method: str
    coefficient: float
    prompt_index: int
    success_rate: float
    mean_log_perplexity: float


class MatchedPoint(EvalOutput):
    """A method's best success within the fluency budget, with its bootstrap CI."""

    method: str
    coefficient: float
    success_rate: float
    ci_low: NumberOrNull
    ci_high: NumberOrNull
    perplexity: float


class Comparison(EvalOutput):
    """Matched-fluency success of method a minus method b, with its paired bootstrap CI."""

    method_a: str
    method_b: str
    coefficient_a: float
    coefficient_b: float
    delta: float
    ci_low: NumberOrNull
    ci_high: NumberOrNull


class Example(EvalOutput):
    """A shown continuation at a method's matched coefficient."""

    method: str
    coefficient: float
    prompt_index: int
    prompt: str
    continuation: str
    success: bool


class SteeringOutput(EvalOutput):
    """Everything one steering evaluation measured."""

    config: SteeringConfig.document_model()  # type: ignore[valid-type]
    hook_name: str
    scale: float
    classifier_accuracy: NumberOrNull
    scan: list[ScannedPrompt]
    methods: list[str]
    direction_cosines: list[DirectionCosine]
    unsteered_perplexity: float
    perplexity_ceiling: float
    curves: list[CurvePoint]
    per_prompt: list[PromptPoint]
    matched: list[MatchedPoint]
    comparisons: list[Comparison]
    examples: list[Example]
