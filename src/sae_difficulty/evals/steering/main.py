"""Steering with an SAE decoder direction vs a diff-of-means direction (AxBench-style).

The question (Wu et al. 2025, AxBench): does adding an SAE feature's decoder direction
to the residual stream steer the model towards a concept as well as the simplest
supervised baseline, the difference of the class means? Both are compared on the same
prompts over a grid of steering coefficients, as *success rate vs fluency* curves, and
at **matched fluency**: each method's best success among the coefficients whose
continuations stay within ``(1 + fluency_budget)`` times the unsteered perplexity.

Demo concept: the demo LM (trained on pydoc prose + stdlib code) should continue prose
prompts with code. The lead passes the directions (unit vectors in ``d_model``), the
residual-norm ``scale`` (a coefficient ``c`` adds ``c * scale * direction``), candidate
prompts and a success classifier; a seeded ``"random"`` control direction is added here.

Design choices (each one a reason, not an accident):

* **Prompts with headroom.** :func:`scan_prompts` samples unsteered continuations of
  every candidate and keeps the ``n_prompts`` with the lowest baseline success that is
  ``<= max_baseline_success``: a prompt the model already continues with code cannot
  show a steering effect. The scan table and a reason per prompt go into the result.
* **Where the vector is added.** ``blocks.{layer}.hook_resid_post`` at every position
  of the prompt and of the generated text, *except position 0 (BOS)*: the project never
  patches BOS (its residual is an attention sink with an atypical norm), and adding a
  vector there would change every later position through attention for reasons that
  have nothing to do with the concept.
* **Sampling with common random numbers.** Each continuation row (prompt, sample
  index) gets its own ``torch.Generator`` seeded from ``(generator_seed, sample index,
  prompt token ids)``; every step draws one uniform number and samples by inverse CDF.
  So a row's random numbers do not depend on the batch it lands in, on the other
  prompts, on the direction or on the coefficient: coefficient 0 reproduces the scan's
  baseline continuations exactly, and two methods are compared on the same draws
  (paired, lower variance; inverse-CDF sampling changes a token only where the steered
  distribution moved past the draw). TransformerLens's ``generate`` draws from one
  global stream, hence the manual loop (no KV cache: the demo contexts are short).
* **Fluency** is the perplexity of the continuation under the *unsteered* model given
  the prompt; a setting's perplexity is ``exp`` of the mean per-continuation
  log-perplexity (a geometric mean, so one degenerate sample does not dominate).
* **Uncertainty.** Percentile bootstrap over prompts (``core.stats.bootstrap_indices`` +
  ``percentile_interval``, scipy's resampling order); the matched coefficient is re-selected inside every resample, so the CI includes the
  selection step. The paired difference resamples the same prompts for both methods.

Success classifier protocol (duck-typed): any object with ``success(texts) -> bool
array``; :class:`CodeLikenessClassifier` is the demo's (char n-gram TF-IDF + logistic
regression, held-out accuracy checked). An optional ``heldout_accuracy`` attribute is
recorded.
"""

from __future__ import annotations

import dataclasses
import math
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import torch
from tqdm.auto import tqdm

from sae_difficulty.core.stats import bootstrap_indices, percentile_interval
from sae_difficulty.evals.base import EvalResult
from sae_difficulty.evals.steering.classifier import SuccessClassifier
from sae_difficulty.evals.steering.config import SteeringConfig
from sae_difficulty.evals.steering.generation import (
    continuation_perplexity,
    decode_tokens,
    generate,
)
from sae_difficulty.evals.steering.output import SteeringOutput
from sae_difficulty.modalities.llm.backbone import check_layer
from sae_difficulty.modalities.llm.prompts import encode_prompt
from sae_difficulty.utils.errors import InputError
from sae_difficulty.utils.io import to_jsonable

RANDOM_METHOD = "random"
HEADLINE_PAIR = ("sae", "diff_of_means")
CLAIM = (
    "SAE feature directions steer worse than or on par with a diff-of-means direction "
    "at matched fluency (Wu et al. 2025, AxBench)"
)
N_EXAMPLES = 3


# --------------------------------------------------------------------------- prompt scan
def _encode_prompts(backbone: Any, prompts: Sequence[str], config: SteeringConfig) -> list[list[int]]:
    if isinstance(prompts, str) or not all(isinstance(p, str) for p in prompts):
        raise InputError("steering prompts: expected a list of strings")
    return [encode_prompt(backbone, p, reserve=config.n_new_tokens) for p in prompts]


def scan_prompts(backbone: Any, prompts: Sequence[str], classifier: SuccessClassifier, config: SteeringConfig) -> pd.DataFrame:
    """Unsteered baseline success of every candidate prompt and which ones are kept.

    Columns: ``prompt_index``, ``prompt``, ``baseline_success`` (share of
    ``samples_per_prompt`` continuations judged successful), ``selected``, ``reason``.
    Kept: the ``n_prompts`` lowest baseline successes ``<= max_baseline_success`` (ties by
    order). InputError when fewer than 2 qualify.
    """
    prompt_ids = _encode_prompts(backbone, prompts, config)
    if len(prompt_ids) < 2:
        raise InputError(f"steering prompts: {len(prompt_ids)} candidate(s); expected at least 2")
    continuations = generate(backbone, prompt_ids, None, 0.0, config, config.seed)
    judged = np.asarray(classifier.success([decode_tokens(backbone, c) for c in continuations]), dtype=bool)
    baseline = judged.reshape(len(prompts), config.samples_per_prompt).mean(axis=1)
    order = sorted(range(len(prompts)), key=lambda i: (baseline[i], i))
    eligible = [i for i in order if baseline[i] <= config.max_baseline_success]
    kept = set(eligible[: config.n_prompts])
    ceiling = config.max_baseline_success
    reasons = []
    for i, rate in enumerate(baseline):
        if i in kept:
            reasons.append(f"baseline success {rate:.3f} <= max {ceiling:.3f} leaves headroom {1 - rate:.3f}")
        elif rate > ceiling:
            reasons.append(f"baseline success {rate:.3f} > max {ceiling:.3f}: no headroom")
        else:
            reasons.append(f"baseline success {rate:.3f} qualifies but n_prompts={config.n_prompts} lower ones were kept")
    if len(kept) < 2:
        raise InputError(
            f"steering prompts: {len(kept)} of {len(prompts)} prompts have baseline success <= max_baseline_success={ceiling}; expected at least 2"
        )
    return pd.DataFrame(
        {
            "prompt_index": np.arange(len(prompts)),
            "prompt": list(prompts),
            "baseline_success": baseline.astype(float),
            "selected": [i in kept for i in range(len(prompts))],
            "reason": reasons,
        }
    )


# --------------------------------------------------------------------------- matched fluency
def matched_success(
    success: np.ndarray, log_perplexity: np.ndarray, fluency_budget: float, idx: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Best success among coefficients within the fluency budget, for prompt resamples ``idx``.

    ``success``, ``log_perplexity``: ``[n_coefficients, n_prompts]`` per-prompt means, row 0
    the unsteered baseline. ``idx``: ``[..., n_prompts]`` prompt indices (default: all once).
    A coefficient qualifies when its mean log-perplexity is at most the baseline's plus
    ``log(1 + fluency_budget)``; the baseline always qualifies; ties go to the smallest
    coefficient. Returns (matched success ``[...]``, coefficient index ``[...]``).
    """
    if idx is None:
        idx = np.arange(success.shape[1])
    mean_success = success[:, idx].mean(axis=-1)  # [n_coef, ...]
    mean_log_ppl = log_perplexity[:, idx].mean(axis=-1)
    within = mean_log_ppl <= mean_log_ppl[0] + math.log1p(fluency_budget) + 1e-12
    masked = np.where(within, mean_success, -np.inf)
    chosen = np.argmax(masked, axis=0)
    return np.take_along_axis(mean_success, chosen[None], axis=0)[0], chosen


def _bootstrap_ci(statistic, n_prompts: int, config: SteeringConfig) -> tuple[float, float]:
    """95% percentile CI of ``statistic(idx)`` over prompt resamples ``idx`` [n_boot, n_prompts] (vectorized)."""
    return percentile_interval(statistic(bootstrap_indices(n_prompts, config.n_boot, np.random.default_rng(config.seed))))


# --------------------------------------------------------------------------- result
@dataclass(frozen=True)
class SteeringResult(EvalResult):
    """Everything one steering evaluation measured (see :class:`SteeringOutput`)."""

    config: dict[str, Any]
    hook_name: str
    scale: float
    classifier_accuracy: float | None
    scan: list[dict[str, Any]]
    methods: list[str]
    direction_cosines: list[dict[str, Any]]
    unsteered_perplexity: float
    perplexity_ceiling: float
    curves: list[dict[str, Any]]
    per_prompt: list[dict[str, Any]]
    matched: list[dict[str, Any]]
    comparisons: list[dict[str, Any]]
    examples: list[dict[str, Any]]

    OUTPUT = SteeringOutput

    def document(self) -> dict[str, Any]:
        """The JSON content (see :class:`SteeringOutput`)."""
        return dataclasses.asdict(self)

    def table(self) -> pd.DataFrame:
        """One row per (method, coefficient): success rate, perplexity, within budget, matched."""
        return pd.DataFrame(self.curves)

    def per_prompt_table(self) -> pd.DataFrame:
        """One row per (method, coefficient, prompt): success rate and mean log-perplexity."""
        return pd.DataFrame(self.per_prompt)


# --------------------------------------------------------------------------- run
def random_direction(d_model: int, seed: int) -> np.ndarray:
    """A seeded unit vector, the control every steering direction must beat."""
    vector = np.random.default_rng([seed, d_model]).standard_normal(d_model)
    return vector / np.linalg.norm(vector)


def _unit_directions(directions: Mapping[str, Any], d_model: int) -> dict[str, np.ndarray]:
    if not isinstance(directions, Mapping) or not directions:
        raise InputError("steering directions: expected a non-empty mapping name -> vector")
    units = {}
    for name, vector in directions.items():
        if name == RANDOM_METHOD:
            raise InputError(f"steering directions: the name {RANDOM_METHOD!r} is reserved for the seeded control direction")
        array = np.asarray(vector.detach().cpu() if isinstance(vector, torch.Tensor) else vector, dtype=np.float64)
        norm = float(np.linalg.norm(array)) if array.ndim == 1 else 0.0
        if array.shape != (d_model,) or not np.isfinite(array).all() or norm == 0.0:
            raise InputError(
                f"steering direction {name!r}: shape {array.shape}; expected a finite non-zero vector of length d_model={d_model}"
            )
        units[str(name)] = array / norm
    return units


@dataclass
class _Setting:
    """What one (direction, coefficient) produced on the selected prompts."""

    texts: list[str]
    judged: np.ndarray  # [n_prompts * samples] bool
    success: np.ndarray  # [n_prompts] share judged successful
    log_ppl: np.ndarray  # [n_prompts] mean log-perplexity under the unsteered model


def _measure(backbone, prompt_ids, direction, coefficient, scale, classifier, config) -> _Setting:
    continuations = generate(backbone, prompt_ids, direction, coefficient, config, config.seed, scale=scale)
    texts = [decode_tokens(backbone, c) for c in continuations]
    judged = np.asarray(classifier.success(texts), dtype=bool)
    repeated = [ids for ids in prompt_ids for _ in range(config.samples_per_prompt)]
    log_ppl = np.log(continuation_perplexity(backbone, repeated, continuations, config.batch_size))
    shape = (len(prompt_ids), config.samples_per_prompt)
    return _Setting(texts, judged, judged.reshape(shape).mean(1), log_ppl.reshape(shape).mean(1))


def _matched_rows(method, success, log_ppl, chosen, settings, prompts, config) -> tuple[dict, list[dict]]:
    """The matched-fluency summary of one method (bootstrap CI over prompts) and its examples."""
    n_prompts = success.shape[1]
    coefficient = config.coefficients[chosen]
    low, high = _bootstrap_ci(lambda idx: matched_success(success, log_ppl, config.fluency_budget, idx)[0], n_prompts, config)
    summary = {
        "method": method,
        "coefficient": coefficient,
        "success_rate": float(success[chosen].mean()),
        "ci_low": low,
        "ci_high": high,
        "perplexity": math.exp(float(log_ppl[chosen].mean())),
    }
    run = settings[(method, coefficient)]
    examples = [
        {
            "method": method,
            "coefficient": coefficient,
            "prompt_index": int(prompts["prompt_index"].iloc[row // config.samples_per_prompt]),
            "prompt": prompts["prompt"].iloc[row // config.samples_per_prompt],
            "continuation": run.texts[row],
            "success": bool(run.judged[row]),
        }
        for row in range(min(N_EXAMPLES, len(run.texts)))
    ]
    return summary, examples


def run_steering(
    backbone: Any,
    prompts: Sequence[str],
    directions: Mapping[str, np.ndarray],
    scale: float,
    classifier: SuccessClassifier,
    config: SteeringConfig,
) -> SteeringResult:
    """Scan prompts, steer along every direction (+ a seeded random one) over the coefficient
    grid, and compare the methods at matched fluency (see the module docstring).

    ``directions``: name -> vector of length ``d_model`` (normalized here); the headline
    needs ``"sae"`` and ``"diff_of_means"``. ``scale``: residual norm that coefficient 1
    stands for. ``classifier``: any object with ``success(texts) -> bool array``.
    """
    hook_name = check_layer(backbone, config.layer)
    if isinstance(scale, bool) or not isinstance(scale, (int, float, np.floating)) or not math.isfinite(scale) or scale <= 0:
        raise InputError(f"steering scale={scale!r}; expected a positive finite number (mean residual norm at the layer)")
    units = _unit_directions(directions, backbone.d_model)
    units[RANDOM_METHOD] = random_direction(backbone.d_model, config.seed)
    methods = list(units)

    scan = scan_prompts(backbone, prompts, classifier, config)
    chosen_prompts = scan[scan["selected"]].sort_values("prompt_index")
    prompt_ids = _encode_prompts(backbone, chosen_prompts["prompt"].tolist(), config)
    coefficients = config.coefficients

    baseline = _measure(backbone, prompt_ids, None, 0.0, float(scale), classifier, config)
    settings: dict[tuple[str, float], _Setting] = {(m, 0.0): baseline for m in methods}
    grid = [(m, c) for m in methods for c in coefficients[1:]]
    for method, coefficient in tqdm(grid, desc="steering", file=sys.stderr, mininterval=5.0):
        settings[(method, coefficient)] = _measure(backbone, prompt_ids, units[method], coefficient, float(scale), classifier, config)
    success = {m: np.stack([settings[(m, c)].success for c in coefficients]) for m in methods}
    log_ppl = {m: np.stack([settings[(m, c)].log_ppl for c in coefficients]) for m in methods}
    baseline_log_ppl = float(baseline.log_ppl.mean())
    log_ceiling = baseline_log_ppl + math.log1p(config.fluency_budget)
    chosen = {m: int(matched_success(success[m], log_ppl[m], config.fluency_budget)[1]) for m in methods}

    curves, per_prompt, matched, examples = [], [], [], []
    for m in methods:
        for k, c in enumerate(coefficients):
            mean_log = float(log_ppl[m][k].mean())
            curves.append(
                {
                    "method": m,
                    "coefficient": c,
                    "success_rate": float(success[m][k].mean()),
                    "mean_log_perplexity": mean_log,
                    "perplexity": math.exp(mean_log),
                    "within_budget": bool(mean_log <= log_ceiling + 1e-12),
                    "matched": k == chosen[m],
                }
            )
            per_prompt += [
                {"method": m, "coefficient": c, "prompt_index": int(i), "success_rate": float(s), "mean_log_perplexity": float(v)}
                for i, s, v in zip(chosen_prompts["prompt_index"], success[m][k], log_ppl[m][k])
            ]
        summary, shown = _matched_rows(m, success[m], log_ppl[m], chosen[m], settings, chosen_prompts, config)
        matched.append(summary)
        examples += shown

    pairs = [HEADLINE_PAIR] if all(name in units for name in HEADLINE_PAIR) else []
    pairs += [(m, RANDOM_METHOD) for m in methods if m != RANDOM_METHOD]
    comparisons = []
    for a, b in pairs:

        def difference(idx, a=a, b=b):
            value_a = matched_success(success[a], log_ppl[a], config.fluency_budget, idx)[0]
            return value_a - matched_success(success[b], log_ppl[b], config.fluency_budget, idx)[0]

        low, high = _bootstrap_ci(difference, len(prompt_ids), config)
        comparisons.append(
            {
                "method_a": a,
                "method_b": b,
                "coefficient_a": coefficients[chosen[a]],
                "coefficient_b": coefficients[chosen[b]],
                "delta": float(difference(np.arange(len(prompt_ids)))),
                "ci_low": low,
                "ci_high": high,
            }
        )

    cosines = [{"method_a": a, "method_b": b, "cosine": float(units[a] @ units[b])} for i, a in enumerate(methods) for b in methods[i + 1 :]]
    accuracy = getattr(classifier, "heldout_accuracy", None)
    return SteeringResult(
        config=to_jsonable(config.to_dict()),
        hook_name=hook_name,
        scale=float(scale),
        classifier_accuracy=None if accuracy is None else float(accuracy),
        scan=to_jsonable(scan.to_dict(orient="records")),
        methods=methods,
        direction_cosines=cosines,
        unsteered_perplexity=math.exp(baseline_log_ppl),
        perplexity_ceiling=math.exp(log_ceiling),
        curves=curves,
        per_prompt=per_prompt,
        matched=matched,
        comparisons=comparisons,
        examples=examples,
    )


# --------------------------------------------------------------------------- ledger + plot
def headline(result: SteeringResult) -> dict[str, Any]:
    """success(sae) − success(diff_of_means) at matched fluency, with its bootstrap CI (null 0).

    When neither method steers at all within the fluency budget (both matched at
    coefficient 0) the difference is 0 by construction, not evidence: the CI is then
    ``None`` so the ledger reads it as inconclusive rather than as "on par".
    """
    a, b = HEADLINE_PAIR
    for row in result.comparisons:
        if (row["method_a"], row["method_b"]) == (a, b):
            unsteered = row["coefficient_a"] == 0.0 and row["coefficient_b"] == 0.0
            return {
                "metric": f"matched-fluency steering success: {a} - {b}",
                "value": float(row["delta"]),
                "ci_low": None if unsteered else row["ci_low"],
                "ci_high": None if unsteered else row["ci_high"],
                "null": 0.0,
                "claim": CLAIM,
            }
    raise InputError(f"steering result has no {a} - {b} comparison; run_steering needs directions named {a!r} and {b!r}")
