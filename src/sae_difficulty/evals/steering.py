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
* **Uncertainty.** Percentile bootstrap over prompts (``scipy.stats.bootstrap``); the
  matched coefficient is re-selected inside every resample, so the CI includes the
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
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import pandas as pd
import torch
from scipy import stats as sps
from tqdm.auto import tqdm

from sae_difficulty.evals.common import reject_unknown_keys
from sae_difficulty.modalities.llm.backbone import check_layer
from sae_difficulty.modalities.llm.prompts import encode_prompt
from sae_difficulty.modalities.llm.scoring import continuation_nll
from sae_difficulty.utils.errors import InputError
from sae_difficulty.utils.io import to_jsonable

RANDOM_METHOD = "random"
HEADLINE_PAIR = ("sae", "diff_of_means")
CLAIM = (
    "SAE feature directions steer worse than or on par with a diff-of-means direction "
    "at matched fluency (Wu et al. 2025, AxBench)"
)
N_EXAMPLES = 3


# --------------------------------------------------------------------------- config
@dataclass(frozen=True)
class SteeringConfig:
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

    layer: int
    coefficients: tuple[float, ...] = (0.0, 0.25, 0.5, 1.0, 2.0, 4.0, 8.0)
    n_new_tokens: int = 24
    samples_per_prompt: int = 4
    temperature: float = 1.0
    max_baseline_success: float = 0.25
    n_prompts: int = 16
    fluency_budget: float = 1.0
    n_boot: int = 1000
    seed: int = 0
    batch_size: int = 16

    def __post_init__(self) -> None:
        def integer(name: str, minimum: int) -> None:
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
                raise InputError(f"steering config: {name}={value!r}; expected an integer >= {minimum}")

        integer("layer", 0)
        for name, minimum in (("n_new_tokens", 1), ("samples_per_prompt", 1), ("n_prompts", 2), ("n_boot", 1), ("seed", 0), ("batch_size", 1)):
            integer(name, minimum)
        try:
            coefficients = tuple(float(c) for c in self.coefficients)
        except (TypeError, ValueError):
            raise InputError(f"steering config: coefficients={self.coefficients!r}; expected a list of numbers") from None
        if (
            len(coefficients) < 2
            or coefficients[0] != 0.0
            or not all(math.isfinite(c) for c in coefficients)
            or any(b <= a for a, b in zip(coefficients, coefficients[1:]))
        ):
            raise InputError(
                f"steering config: coefficients={list(coefficients)}; expected >= 2 finite, strictly increasing values starting at 0"
            )
        object.__setattr__(self, "coefficients", coefficients)
        def number(name: str, ok, expected: str) -> None:
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or not ok(value):
                raise InputError(f"steering config: {name}={value!r}; expected {expected}")

        number("temperature", lambda v: v > 0, "a finite number > 0")
        number("fluency_budget", lambda v: v >= 0, "a finite number >= 0 (relative perplexity increase)")
        number("max_baseline_success", lambda v: 0 <= v < 1, "a number in [0, 1)")

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> SteeringConfig:
        """Build from a config mapping; unknown keys are a one-line InputError."""
        reject_unknown_keys(values, (spec.name for spec in dataclasses.fields(cls)), "steering config")
        if "layer" not in values:
            raise InputError("steering config: missing key 'layer' (the residual layer to steer)")
        values = dict(values)
        if "coefficients" in values and isinstance(values["coefficients"], (list, tuple)):
            values["coefficients"] = tuple(values["coefficients"])
        return cls(**values)


# --------------------------------------------------------------------------- classifier
class SuccessClassifier(Protocol):
    """What :func:`run_steering` needs from a concept judge."""

    def success(self, texts: Sequence[str]) -> np.ndarray: ...


def chop(texts: Sequence[str], chunk_chars: int) -> list[str]:
    """Consecutive, non-overlapping ``chunk_chars`` pieces of every text (a shorter tail is
    kept when it is at least half a chunk), so the judge is trained on pieces as long as the
    continuations it will judge rather than on whole documents."""
    pieces: list[str] = []
    for text in texts:
        for start in range(0, len(text), chunk_chars):
            piece = text[start : start + chunk_chars]
            if len(piece) >= chunk_chars // 2 and piece.strip():
                pieces.append(piece)
    return pieces


class CodeLikenessClassifier:
    """P(code-like) of a text: char n-gram TF-IDF + logistic regression (scikit-learn).

    :meth:`fit` chops prose and code documents into ``chunk_chars`` pieces (default 96
    characters, about the length of a 24-token continuation of a small byte-level BPE
    model), holds out ``test_fraction`` of them (stratified, seeded), records
    ``heldout_accuracy`` and refuses (InputError) a judge below ``min_accuracy``. Code
    documents are usually far longer than prose ones, so the classes are weighted
    ``balanced`` and the held-out accuracy is the *balanced* accuracy (mean per-class
    recall): always answering "code" must not pass as a judge.
    """

    def __init__(self, chunk_chars: int = 96, test_fraction: float = 0.25, min_accuracy: float = 0.8):
        if chunk_chars < 2 or not 0.0 < test_fraction < 1.0:
            raise InputError(f"CodeLikenessClassifier: chunk_chars={chunk_chars}, test_fraction={test_fraction}; expected >= 2 and in (0, 1)")
        self.chunk_chars = int(chunk_chars)
        self.test_fraction = float(test_fraction)
        self.min_accuracy = float(min_accuracy)
        self.pipeline = None
        self.heldout_accuracy: float | None = None
        self.n_train = 0
        self.n_test = 0

    def fit(self, prose_texts: Sequence[str], code_texts: Sequence[str], seed: int = 0) -> CodeLikenessClassifier:
        """Train on chunks of the two corpora; InputError if held-out accuracy < ``min_accuracy``."""
        from sklearn.feature_extraction.text import TfidfVectorizer
        from sklearn.linear_model import LogisticRegression
        from sklearn.metrics import balanced_accuracy_score
        from sklearn.model_selection import train_test_split
        from sklearn.pipeline import make_pipeline

        prose, code = chop(prose_texts, self.chunk_chars), chop(code_texts, self.chunk_chars)
        minimum = 4
        if len(prose) < minimum or len(code) < minimum:
            raise InputError(
                f"CodeLikenessClassifier.fit: {len(prose)} prose and {len(code)} code chunks of {self.chunk_chars} characters; "
                f"expected at least {minimum} of each"
            )
        texts = prose + code
        labels = np.array([0] * len(prose) + [1] * len(code))
        train_x, test_x, train_y, test_y = train_test_split(
            texts, labels, test_size=self.test_fraction, random_state=seed, stratify=labels
        )
        self.pipeline = make_pipeline(
            TfidfVectorizer(analyzer="char_wb", ngram_range=(1, 3), sublinear_tf=True),
            LogisticRegression(max_iter=2000, class_weight="balanced"),
        )
        self.pipeline.fit(train_x, train_y)
        self.heldout_accuracy = float(balanced_accuracy_score(test_y, self.pipeline.predict(test_x)))
        self.n_train, self.n_test = len(train_x), len(test_x)
        if self.heldout_accuracy < self.min_accuracy:
            raise InputError(
                f"CodeLikenessClassifier: held-out accuracy {self.heldout_accuracy:.3f} < {self.min_accuracy}; it cannot judge steering success"
            )
        return self

    def predict_proba(self, texts: Sequence[str]) -> np.ndarray:
        """Probability that each text is code-like, shape ``[len(texts)]``."""
        if self.pipeline is None:
            raise InputError("CodeLikenessClassifier: call fit(prose_texts, code_texts) before predict_proba")
        if len(texts) == 0:
            return np.zeros(0)
        return self.pipeline.predict_proba(list(texts))[:, 1]

    def success(self, texts: Sequence[str]) -> np.ndarray:
        """Code-like (p > 0.5) per text."""
        return self.predict_proba(texts) > 0.5


# --------------------------------------------------------------------------- generation
def _row_generator(generator_seed: int, sample: int, prompt: Sequence[int]) -> torch.Generator:
    """A generator for one (prompt, sample) row, independent of batch and position in the list."""
    state = np.random.SeedSequence([int(generator_seed), int(sample), len(prompt), *map(int, prompt)]).generate_state(1, np.uint64)[0]
    return torch.Generator(device="cpu").manual_seed(int(state))


def _check_prompt_ids(backbone: Any, prompt_ids: Sequence[Sequence[int]], n_new_tokens: int) -> None:
    for i, row in enumerate(prompt_ids):
        if len(row) < 1 or int(row[0]) != backbone.bos_id:
            raise InputError(f"steering prompt_ids[{i}]: expected a row starting with BOS id {backbone.bos_id} (see llm_tasks.encode_prompt)")
        if len(row) + n_new_tokens > backbone.n_ctx:
            raise InputError(
                f"steering prompt_ids[{i}]: {len(row)} tokens + {n_new_tokens} new exceed the model context {backbone.n_ctx}"
            )


@torch.no_grad()
def generate(
    backbone: Any,
    prompt_ids: Sequence[Sequence[int]],
    direction: torch.Tensor | np.ndarray | None,
    coefficient: float,
    config: SteeringConfig,
    generator_seed: int,
    scale: float = 1.0,
) -> list[list[int]]:
    """Sampled continuations with ``coefficient * scale * direction`` added to the residual.

    ``prompt_ids`` rows start with BOS. Returns ``len(prompt_ids) * samples_per_prompt``
    continuations of ``n_new_tokens`` ids, prompt-major (prompt 0's samples first). The
    vector is added at ``blocks.{layer}.hook_resid_post`` on every position but BOS.
    Rows of equal prompt length are batched (``batch_size``); the result does not depend
    on the batching (per-row generators, see the module docstring).
    """
    hook_name = check_layer(backbone, config.layer)
    _check_prompt_ids(backbone, prompt_ids, config.n_new_tokens)
    model = backbone.model
    steer = None
    if direction is not None and coefficient != 0.0:
        vector = torch.as_tensor(np.asarray(direction, dtype=np.float64) * (coefficient * scale))
        steer = vector.to(device=backbone.device, dtype=model.cfg.dtype)

    def add_vector(resid: torch.Tensor, hook: Any) -> torch.Tensor:
        steered = resid.clone()
        steered[:, 1:, :] += steer
        return steered

    rows = [(p, s) for p in range(len(prompt_ids)) for s in range(config.samples_per_prompt)]
    by_length: dict[int, list[tuple[int, int]]] = {}
    for row in rows:
        by_length.setdefault(len(prompt_ids[row[0]]), []).append(row)
    out: dict[tuple[int, int], list[int]] = {}
    hooks = [(hook_name, add_vector)] if steer is not None else []
    with model.hooks(fwd_hooks=hooks):
        for length in sorted(by_length):
            group = by_length[length]
            for start in range(0, len(group), config.batch_size):
                batch = group[start : start + config.batch_size]
                draws = torch.stack(
                    [
                        torch.rand(config.n_new_tokens, generator=_row_generator(generator_seed, s, prompt_ids[p]), dtype=torch.float64)
                        for p, s in batch
                    ]
                )
                tokens = torch.tensor([list(prompt_ids[p]) for p, _ in batch], dtype=torch.long, device=backbone.device)
                for step in range(config.n_new_tokens):
                    logits = model(tokens)[:, -1, :].double().cpu()
                    cdf = torch.cumsum(torch.softmax(logits / config.temperature, dim=-1), dim=-1)
                    # Inverse-CDF draw; the clamp guards against cdf[-1] < 1 by round-off.
                    picked = torch.searchsorted(cdf, (draws[:, step : step + 1] * cdf[:, -1:]).contiguous(), right=True)
                    picked = picked.clamp_max(cdf.shape[-1] - 1)
                    tokens = torch.cat([tokens, picked.to(backbone.device)], dim=1)
                for row, (p, s) in enumerate(batch):
                    out[(p, s)] = tokens[row, length:].tolist()
    return [out[row] for row in rows]


def continuation_perplexity(
    backbone: Any, prompt_ids: Sequence[Sequence[int]], continuation_ids: Sequence[Sequence[int]], batch_size: int = 16
) -> np.ndarray:
    """exp(mean NLL) of each continuation's tokens under the UNSTEERED model, given its prompt."""
    if len(prompt_ids) != len(continuation_ids):
        raise InputError(f"continuation_perplexity: {len(prompt_ids)} prompts but {len(continuation_ids)} continuations")
    if any(len(c) == 0 for c in continuation_ids):
        raise InputError("continuation_perplexity: an empty continuation has no perplexity")
    nll, _ = continuation_nll(backbone, [(list(p), list(c)) for p, c in zip(prompt_ids, continuation_ids)], batch_size)
    return np.exp(np.array([row.mean() for row in nll]))


def _decode(backbone: Any, ids: Sequence[int]) -> str:
    return backbone.tokenizer.decode(list(ids), skip_special_tokens=True)


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
    judged = np.asarray(classifier.success([_decode(backbone, c) for c in continuations]), dtype=bool)
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
    """95% percentile CI of ``statistic(idx)`` over prompt resamples (scipy, vectorized)."""
    result = sps.bootstrap(
        (np.arange(n_prompts),),
        lambda idx, axis=-1: statistic(idx),
        n_resamples=config.n_boot,
        vectorized=True,
        axis=-1,
        method="percentile",
        rng=np.random.default_rng(config.seed),
    )
    return float(result.confidence_interval.low), float(result.confidence_interval.high)


# --------------------------------------------------------------------------- result
@dataclass(frozen=True)
class SteeringResult:
    """Everything one steering evaluation measured (see :data:`RESULT_SCHEMA`)."""

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

    def to_dict(self) -> dict[str, Any]:
        """JSON-able, deterministic dict that validates against :data:`RESULT_SCHEMA`."""
        return to_jsonable(dataclasses.asdict(self))

    def table(self) -> pd.DataFrame:
        """One row per (method, coefficient): success rate, perplexity, within budget, matched."""
        return pd.DataFrame(self.curves)

    def per_prompt_table(self) -> pd.DataFrame:
        """One row per (method, coefficient, prompt): success rate and mean log-perplexity."""
        return pd.DataFrame(self.per_prompt)


_NUM = {"type": "number"}
_NUM_OR_NULL = {"type": ["number", "null"]}
_STR = {"type": "string"}
_INT = {"type": "integer"}
_BOOL = {"type": "boolean"}


def _rows(properties: dict[str, Any]) -> dict[str, Any]:
    return {
        "type": "array",
        "items": {"type": "object", "properties": properties, "required": sorted(properties), "additionalProperties": False},
    }


RESULT_SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "title": "SteeringResult",
    "type": "object",
    "additionalProperties": False,
    "required": [f.name for f in dataclasses.fields(SteeringResult)],
    "properties": {
        "config": {"type": "object", "required": [f.name for f in dataclasses.fields(SteeringConfig)]},
        "hook_name": _STR,
        "scale": _NUM,
        "classifier_accuracy": _NUM_OR_NULL,
        "scan": _rows({"prompt_index": _INT, "prompt": _STR, "baseline_success": _NUM, "selected": _BOOL, "reason": _STR}),
        "methods": {"type": "array", "items": _STR},
        "direction_cosines": _rows({"method_a": _STR, "method_b": _STR, "cosine": _NUM}),
        "unsteered_perplexity": _NUM,
        "perplexity_ceiling": _NUM,
        "curves": _rows(
            {
                "method": _STR,
                "coefficient": _NUM,
                "success_rate": _NUM,
                "mean_log_perplexity": _NUM,
                "perplexity": _NUM,
                "within_budget": _BOOL,
                "matched": _BOOL,
            }
        ),
        "per_prompt": _rows(
            {"method": _STR, "coefficient": _NUM, "prompt_index": _INT, "success_rate": _NUM, "mean_log_perplexity": _NUM}
        ),
        "matched": _rows(
            {
                "method": _STR,
                "coefficient": _NUM,
                "success_rate": _NUM,
                "ci_low": _NUM_OR_NULL,
                "ci_high": _NUM_OR_NULL,
                "perplexity": _NUM,
            }
        ),
        "comparisons": _rows(
            {
                "method_a": _STR,
                "method_b": _STR,
                "coefficient_a": _NUM,
                "coefficient_b": _NUM,
                "delta": _NUM,
                "ci_low": _NUM_OR_NULL,
                "ci_high": _NUM_OR_NULL,
            }
        ),
        "examples": _rows(
            {"method": _STR, "coefficient": _NUM, "prompt_index": _INT, "prompt": _STR, "continuation": _STR, "success": _BOOL}
        ),
    },
}


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
    texts = [_decode(backbone, c) for c in continuations]
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
        config=to_jsonable(dataclasses.asdict(config)),
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


def plot_steering(result: SteeringResult, path: str | Path) -> Path:
    """Success rate vs perplexity, one curve per method, points annotated with the coefficient;
    the fluency ceiling dashed and each method's matched point circled."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    curves = result.table()
    fig, ax = plt.subplots(figsize=(6.4, 4.4))
    for method, rows in curves.groupby("method", sort=False):
        line = ax.plot(rows["perplexity"], rows["success_rate"], marker="o", label=method)[0]
        for _, row in rows.iterrows():
            ax.annotate(f"{row['coefficient']:g}", (row["perplexity"], row["success_rate"]), textcoords="offset points", xytext=(3, 3), fontsize=7)
        best = rows[rows["matched"]]
        ax.scatter(best["perplexity"], best["success_rate"], s=160, facecolors="none", edgecolors=line.get_color(), linewidths=1.5)
    ax.axvline(result.perplexity_ceiling, color="grey", linestyle="--", linewidth=1, label="fluency ceiling")
    ax.set_xscale("log")
    ax.set_xlabel("perplexity of continuation under the unsteered model")
    ax.set_ylabel("steering success rate")
    ax.set_ylim(-0.03, 1.03)
    ax.set_title(f"Steering at {result.hook_name} (coefficient x {result.scale:.3g})")
    ax.legend(fontsize=8)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
