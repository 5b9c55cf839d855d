"""Settings of the steering evaluation (``sae_evals.steering``; the stage adds ``n_candidate_prompts``)."""

from __future__ import annotations

from dataclasses import dataclass

from sae_difficulty.evals.base import EvalConfig, integer, number, numbers


@dataclass(frozen=True)
class SteeringConfig(EvalConfig):
    """Settings of one steering evaluation.

    ``coefficients``: steering strengths in units of ``scale`` (mean residual norm at the
    layer), strictly increasing, non-negative, starting at 0 (the unsteered baseline).
    ``n_new_tokens`` sampled per continuation, ``samples_per_prompt`` continuations per
    prompt at ``temperature``. Prompt scan: keep up to ``n_prompts`` prompts with baseline
    success ``<= max_baseline_success``. ``fluency_budget``: allowed relative perplexity
    increase over the unsteered continuations for "matched fluency". ``n_boot`` bootstrap
    resamples over prompts; ``seed`` drives sampling, the random direction and the
    bootstrap; ``batch_size`` continuation rows per forward pass.
    """

    NAME = "steering"

    layer: int = integer(minimum=0, doc="residual layer to steer")
    coefficients: tuple[float, ...] = numbers((0.0, 0.25, 0.5, 1.0, 2.0, 4.0, 8.0), minimum=0, doc="steering strengths")
    n_new_tokens: int = integer(24, minimum=1, doc="tokens per continuation")
    samples_per_prompt: int = integer(4, minimum=1, doc="continuations per prompt and setting")
    temperature: float = number(1.0, minimum=0, exclusive_minimum=True, doc="sampling temperature")
    max_baseline_success: float = number(0.25, minimum=0, maximum=1, exclusive_maximum=True, doc="prompt headroom")
    n_prompts: int = integer(16, minimum=2, doc="prompts kept")
    fluency_budget: float = number(1.0, minimum=0, doc="relative perplexity increase allowed")
    n_boot: int = integer(1000, minimum=1, doc="bootstrap resamples of prompts")
    seed: int = integer(0, minimum=0)
    batch_size: int = integer(16, minimum=1, doc="continuation rows per forward pass")

    def check(self) -> None:
        increasing = all(b > a for a, b in zip(self.coefficients, self.coefficients[1:]))
        if len(self.coefficients) < 2 or self.coefficients[0] != 0.0 or not increasing:
            raise self.invalid("coefficients", ">= 2 finite, strictly increasing values starting at 0", self.coefficients)
