"""Faithfulness of a small SAE-feature circuit against random feature sets.

For a behaviour the model does well (a confident, correct next-token prediction),
keep only the top-K SAE features, ranked by attribution patching, at one or several
residual-stream layers and mean-ablate all others; faithfulness is the share of the
metric the kept features recover (Marks et al. 2024, *Sparse Feature Circuits*;
Wang et al. 2023):

    faithfulness(C) = (m(C) - m(∅)) / (m(full) - m(∅))

with m the mean log-probability of the target token, m(full) every feature kept and
m(∅) every feature mean-ablated. Top-K circuits are compared with ``n_random`` random
K-feature sets; the gap (top − mean random) gets a bootstrap CI over examples.

The SAE error term (``x - decode(encode(x))``) stays intact by default
(``keep_error_term=True``), as in Marks et al.'s feature circuits, where error nodes are
kept: only the features are ablated, so keeping every feature reproduces the clean
model exactly and m(∅) measures the features' share of the behaviour, not the SAE's
reconstruction loss.

Structure: :func:`faithfulness_curve` is model-free (numpy; any ``evaluate_kept``);
the rest is TransformerLens glue. Why hand-written: no library implements attribution
patching over sae-lens features on TransformerLens hooks (Marks et al.'s
``feature-circuits`` is built on nnsight and its own dictionary classes).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, fields
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from scipy import stats as sps
from tqdm.auto import tqdm

from sae_difficulty.evals.common import reject_unknown_keys
from sae_difficulty.modalities.llm.backbone import Backbone, check_layer
from sae_difficulty.modalities.llm.scoring import token_nll
from sae_difficulty.utils.errors import InputError
from sae_difficulty.utils.io import to_jsonable

METRIC_NAME = "target_log_prob"
RANKING = "abs_attribution"
CURVE_COLUMNS = (
    "k",
    "faithfulness_top",
    "faithfulness_random_mean",
    "faithfulness_random_sd",
    "gap",
    "gap_ci_low",
    "gap_ci_high",
)
HEADLINE_MAX_K = 20
CLAIM = (
    "a few attribution-ranked SAE features recover most of a behaviour, far more than random features "
    "(Marks et al. 2024, Sparse Feature Circuits)"
)


def _is_int(value: Any) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_))


def _int_tuple(value: Any, name: str, minimum: int) -> tuple[int, ...]:
    items = tuple(value) if isinstance(value, (list, tuple)) else (value,)
    if not items or not all(_is_int(item) and item >= minimum for item in items):
        raise InputError(f"CircuitConfig.{name}: expected a non-empty list of integers >= {minimum}, got {value!r}")
    if len(set(items)) != len(items):
        raise InputError(f"CircuitConfig.{name}: duplicate values in {list(items)}")
    return tuple(int(item) for item in items)


@dataclass(frozen=True)
class CircuitConfig:
    """Which layers hold the circuit's nodes, which circuit sizes K to test, and the statistics.

    ``layers``: residual-stream layers (``blocks.{L}.hook_resid_post``) with an SAE each;
    ``ks``: circuit sizes; ``n_random``: random K-sets per K; ``n_boot``: bootstrap
    resamples of examples for the gap CI; ``keep_error_term``: keep the SAE error term
    intact (True, Marks et al.) or replace the residual by the SAE reconstruction.
    """

    layers: tuple[int, ...]
    ks: tuple[int, ...] = (5, 10, 20, 50)
    n_random: int = 10
    n_boot: int = 1000
    seed: int = 0
    batch_size: int = 16
    keep_error_term: bool = True

    def __post_init__(self) -> None:
        object.__setattr__(self, "layers", tuple(sorted(_int_tuple(self.layers, "layers", 0))))
        object.__setattr__(self, "ks", tuple(sorted(_int_tuple(self.ks, "ks", 1))))
        for name, minimum in (("n_random", 1), ("n_boot", 1), ("seed", 0), ("batch_size", 1)):
            value = getattr(self, name)
            if not _is_int(value) or value < minimum:
                raise InputError(f"CircuitConfig.{name}: expected an integer >= {minimum}, got {value!r}")
        if not isinstance(self.keep_error_term, bool):
            raise InputError(f"CircuitConfig.keep_error_term: expected true or false, got {self.keep_error_term!r}")

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> CircuitConfig:
        """Build from a config mapping (lists become tuples); one-line InputError on unknown keys."""
        reject_unknown_keys(values, (f.name for f in fields(cls)), "circuit config")
        if "layers" not in values:
            raise InputError("circuit config: missing key 'layers' (the residual layers that hold the circuit)")
        return cls(**dict(values))


# --------------------------------------------------------------------------- model-free core


def _check_metric(values: Any, n_examples: int | None, what: str) -> np.ndarray:
    metric = np.asarray(values, dtype=np.float64)
    if metric.ndim != 1 or metric.size < 2:
        raise InputError(f"evaluate_kept({what}): expected a per-example metric vector of >= 2 examples, got shape {metric.shape}")
    if n_examples is not None and metric.size != n_examples:
        raise InputError(f"evaluate_kept({what}): returned {metric.size} examples, expected {n_examples}")
    if not np.isfinite(metric).all():
        raise InputError(f"evaluate_kept({what}): non-finite metric at example {int(np.flatnonzero(~np.isfinite(metric))[0])}")
    return metric


def rank_nodes(attribution: np.ndarray) -> np.ndarray:
    """Node indices by decreasing |attribution|, ties broken by lower index first.

    The magnitude ranks: a node whose ablation would *raise* the metric is as much part
    of the mechanism as one whose ablation lowers it (Marks et al. keep nodes by |IE|).
    """
    return np.lexsort((np.arange(attribution.size), -np.abs(attribution)))


def _gap_statistic(full: np.ndarray, empty: np.ndarray, top: np.ndarray, *randoms: np.ndarray, axis: int = -1) -> np.ndarray:
    """Faithfulness(top) − mean faithfulness(random sets), from per-example metrics (vectorized over resamples)."""
    base = empty.mean(axis=axis)
    scale = full.mean(axis=axis) - base
    with np.errstate(divide="ignore", invalid="ignore"):
        top_faithfulness = (top.mean(axis=axis) - base) / scale
        random_faithfulness = np.mean([(r.mean(axis=axis) - base) / scale for r in randoms], axis=0)
    return top_faithfulness - random_faithfulness


def _curve_with_endpoints(
    attribution: np.ndarray,
    evaluate_kept: Callable[[np.ndarray], np.ndarray],
    ks: Sequence[int],
    n_random: int,
    n_boot: int,
    seed: int,
) -> tuple[pd.DataFrame, np.ndarray, np.ndarray]:
    scores = np.asarray(attribution, dtype=np.float64)
    if scores.ndim != 1 or scores.size == 0 or not np.isfinite(scores).all():
        raise InputError(f"attribution: expected a finite 1-D array over the nodes, got shape {scores.shape}")
    n_nodes = scores.size
    ks = sorted({int(k) for k in ks})
    if not ks or ks[0] < 1 or ks[-1] > n_nodes:
        raise InputError(f"ks: expected circuit sizes in [1, {n_nodes}] (the number of nodes), got {ks}")
    if n_random < 1 or n_boot < 1:
        raise InputError(f"n_random and n_boot: expected integers >= 1, got {n_random} and {n_boot}")

    full = _check_metric(evaluate_kept(np.ones(n_nodes, dtype=bool)), None, "all nodes kept")
    empty = _check_metric(evaluate_kept(np.zeros(n_nodes, dtype=bool)), full.size, "no node kept")
    scale = full.mean() - empty.mean()
    if abs(scale) <= 1e-9 + 1e-6 * max(abs(full.mean()), abs(empty.mean())):
        raise InputError(
            f"the metric does not depend on the nodes (mean {full.mean():.6g} with all kept vs {empty.mean():.6g} with none): nothing to explain"
        )

    def faithfulness(metric: np.ndarray) -> float:
        return float((metric.mean() - empty.mean()) / scale)

    order = rank_nodes(scores)
    rng = np.random.default_rng(seed)
    rows = []
    for k in tqdm(ks, desc="circuit faithfulness (K)", leave=False):
        kept = np.zeros(n_nodes, dtype=bool)
        kept[order[:k]] = True
        top = _check_metric(evaluate_kept(kept), full.size, f"top {k}")
        randoms = []
        for _ in range(n_random):
            kept = np.zeros(n_nodes, dtype=bool)
            kept[rng.choice(n_nodes, size=k, replace=False)] = True
            randoms.append(_check_metric(evaluate_kept(kept), full.size, f"random {k}"))
        random_faithfulness = np.array([faithfulness(r) for r in randoms])
        # examples resampled jointly for every metric vector; the ratio is recomputed per resample
        interval = sps.bootstrap(
            (full, empty, top, *randoms),
            _gap_statistic,
            n_resamples=n_boot,
            paired=True,
            vectorized=True,
            method="percentile",
            rng=np.random.default_rng([seed, k]),
        ).confidence_interval
        rows.append(
            {
                "k": k,
                "faithfulness_top": faithfulness(top),
                "faithfulness_random_mean": float(random_faithfulness.mean()),
                "faithfulness_random_sd": float(random_faithfulness.std(ddof=1)) if n_random > 1 else 0.0,
                "gap": faithfulness(top) - float(random_faithfulness.mean()),
                "gap_ci_low": float(interval.low),
                "gap_ci_high": float(interval.high),
            }
        )
    return pd.DataFrame(rows, columns=list(CURVE_COLUMNS)), full, empty


def faithfulness_curve(
    attribution: np.ndarray,
    evaluate_kept: Callable[[np.ndarray], np.ndarray],
    ks: Sequence[int] = (5, 10, 20, 50),
    n_random: int = 10,
    n_boot: int = 1000,
    seed: int = 0,
) -> pd.DataFrame:
    """Faithfulness of the top-K nodes (by |attribution|) and of random K-sets, for each K.

    ``evaluate_kept(mask)`` maps a boolean keep-mask over the nodes to a per-example
    metric vector. faithfulness(C) = (mean m_C − mean m_∅) / (mean m_full − mean m_∅).
    ``gap`` = top − mean of ``n_random`` random K-sets (seeded), with a 95% percentile
    bootstrap CI that resamples examples jointly for all metric vectors. Rows:
    ``k, faithfulness_top, faithfulness_random_mean, faithfulness_random_sd, gap,
    gap_ci_low, gap_ci_high``. InputError when m_full ≈ m_∅ (nothing to explain).
    """
    return _curve_with_endpoints(attribution, evaluate_kept, ks, n_random, n_boot, seed)[0]


# --------------------------------------------------------------------------- behaviour examples


@dataclass(frozen=True, eq=False)
class BehaviourExamples:
    """Prompts on which the model performs a behaviour: ``tokens`` [n, ctx] (BOS-led),
    the ``position`` [n] whose logits predict ``target`` [n] (the next token there)."""

    tokens: torch.Tensor
    position: torch.Tensor
    target: torch.Tensor

    def __post_init__(self) -> None:
        if self.tokens.ndim != 2 or self.tokens.dtype != torch.long or self.tokens.shape[1] < 2:
            raise InputError(f"BehaviourExamples.tokens: expected a LongTensor [n, ctx >= 2], got {self.tokens.dtype} {tuple(self.tokens.shape)}")
        n, ctx = self.tokens.shape
        for name in ("position", "target"):
            value = getattr(self, name)
            if value.shape != (n,) or value.dtype != torch.long:
                raise InputError(f"BehaviourExamples.{name}: expected a LongTensor [{n}], got {value.dtype} {tuple(value.shape)}")
        if n and not bool(((self.position >= 1) & (self.position < ctx)).all()):
            raise InputError(f"BehaviourExamples.position: expected positions in [1, {ctx - 1}] (position 0 is BOS and never patched)")

    def __len__(self) -> int:
        return int(self.tokens.shape[0])

    def batches(self, batch_size: int):
        """(tokens, position, target) slices of ``batch_size`` examples."""
        for start in range(0, len(self), batch_size):
            stop = start + batch_size
            yield self.tokens[start:stop], self.position[start:stop], self.target[start:stop]


def target_log_prob(logits: torch.Tensor, position: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Log-probability of ``target`` at ``position`` for each example: [batch]."""
    rows = torch.arange(logits.shape[0], device=logits.device)
    return torch.log_softmax(logits[rows, position.to(logits.device)].float(), dim=-1)[rows, target.to(logits.device)]


@torch.no_grad()
def select_confident_examples(
    backbone: Backbone,
    windows: torch.Tensor,
    min_probability: float = 0.5,
    max_examples: int | None = None,
    batch_size: int = 16,
) -> BehaviourExamples:
    """One example per window: its most confident correct next-token prediction, if ≥ ``min_probability``.

    ``windows`` [n, ctx] are BOS-led held-out text/code windows. Position 0 (BOS) is
    never a prediction site (it is not patched, so it could not depend on the circuit).
    Windows without such a position are skipped; at most ``max_examples`` are kept, in
    window order.
    """
    if windows.ndim != 2 or windows.shape[1] < 3:
        raise InputError(f"windows: expected a token tensor [n, ctx >= 3], got shape {tuple(windows.shape)}")
    if not 0 < min_probability <= 1:
        raise InputError(f"min_probability: expected a number in (0, 1], got {min_probability!r}")
    log_floor = float(np.log(min_probability))
    tokens, positions, targets = [], [], []
    for start in tqdm(range(0, windows.shape[0], batch_size), desc="confident examples", leave=False):
        batch = windows[start : start + batch_size].long().to(backbone.device)
        log_probs = -token_nll(backbone.model(batch), batch)[:, 1:]  # column j: position j + 1 predicting token j + 2
        best_log_prob, best = log_probs.max(dim=1)
        for row in torch.nonzero(best_log_prob >= log_floor).flatten().tolist():
            position = int(best[row]) + 1
            tokens.append(batch[row].cpu())
            positions.append(position)
            targets.append(int(batch[row, position + 1]))
        if max_examples is not None and len(tokens) >= max_examples:
            break
    if not tokens:
        raise InputError(f"windows: no position in the {windows.shape[0]} windows has a next-token probability >= {min_probability}")
    keep = len(tokens) if max_examples is None else min(len(tokens), int(max_examples))
    return BehaviourExamples(
        tokens=torch.stack(tokens[:keep]), position=torch.tensor(positions[:keep]), target=torch.tensor(targets[:keep])
    )


# --------------------------------------------------------------------------- SAE nodes


def _check_saes(backbone: Backbone, saes: Mapping[int, Any], config: CircuitConfig) -> dict[int, str]:
    hooks = {}
    for layer in config.layers:
        hooks[layer] = check_layer(backbone, layer)
        if layer not in saes:
            raise InputError(f"saes: no SAE for circuit layer {layer} (have layers {sorted(saes)})")
        if int(saes[layer].cfg.d_in) != backbone.d_model:
            raise InputError(f"saes[{layer}]: d_in={saes[layer].cfg.d_in} does not match the model's d_model={backbone.d_model}")
    return hooks


def node_index(saes: Mapping[int, Any], config: CircuitConfig) -> list[tuple[int, int]]:
    """The (layer, feature) of every node, layers in increasing order: the order of attributions and masks."""
    return [(layer, feature) for layer in config.layers for feature in range(int(saes[layer].cfg.d_sae))]


def _layer_slices(saes: Mapping[int, Any], config: CircuitConfig) -> dict[int, slice]:
    slices, start = {}, 0
    for layer in config.layers:
        stop = start + int(saes[layer].cfg.d_sae)
        slices[layer] = slice(start, stop)
        start = stop
    return slices


@torch.no_grad()
def mean_feature_codes(backbone: Backbone, saes: Mapping[int, Any], examples: BehaviourExamples, config: CircuitConfig) -> dict[int, np.ndarray]:
    """Mean SAE code per layer over all non-BOS positions of the examples (clean run): the ablation values."""
    hooks = _check_saes(backbone, saes, config)
    sums = {layer: torch.zeros(int(saes[layer].cfg.d_sae), dtype=torch.float64) for layer in config.layers}
    count = 0
    for tokens, _, _ in examples.batches(config.batch_size):
        _, cache = backbone.model.run_with_cache(
            tokens.to(backbone.device), names_filter=list(hooks.values()), stop_at_layer=max(config.layers) + 1
        )
        for layer, name in hooks.items():
            sums[layer] += saes[layer].encode(cache[name][:, 1:]).double().sum(dim=(0, 1)).cpu()
        count += tokens.shape[0] * (tokens.shape[1] - 1)
    return {layer: (total / count).float().numpy() for layer, total in sums.items()}


def _attribution_hook(x: torch.Tensor, hook: Any, sae: Any, leaves: dict[int, torch.Tensor], layer: int) -> torch.Tensor:
    """resid = decode(codes) + error with ``codes`` a leaf: ∂metric/∂codes is the partial with the error fixed,
    while the upstream residual still receives the full gradient (error = x − decode(codes).detach())."""
    residual = x[:, 1:]
    codes = sae.encode(residual.detach()).detach().requires_grad_(True)
    leaves[layer] = codes
    decoded = sae.decode(codes)
    return torch.cat([x[:, :1], decoded + (residual - decoded.detach())], dim=1)


def sae_feature_attribution(
    backbone: Backbone, saes: Mapping[int, Any], examples: BehaviourExamples, config: CircuitConfig
) -> tuple[np.ndarray, list[tuple[int, int]], dict[int, np.ndarray]]:
    """Attribution patching (Syed et al. 2023; Marks et al. 2024) of every SAE feature at ``config.layers``.

    attribution_i = mean over examples of Σ_positions (mean_code_i − code_i) · ∂metric/∂code_i,
    the linear estimate of the change in the target log-probability when feature i is
    mean-ablated (negative: ablating it hurts). Gradients flow through downstream layers'
    residuals, so an upstream feature's attribution includes its effect via later
    layers. Circuits rank nodes by |attribution| (:func:`rank_nodes`).

    Returns ``(attribution [n_nodes], node_index [(layer, feature)], mean_codes {layer: [d_sae]})``.
    """
    hooks = _check_saes(backbone, saes, config)
    mean_codes = mean_feature_codes(backbone, saes, examples, config)
    means = {layer: torch.from_numpy(mean_codes[layer]).to(backbone.device) for layer in config.layers}
    totals = {layer: torch.zeros(int(saes[layer].cfg.d_sae), dtype=torch.float64) for layer in config.layers}
    for tokens, position, target in tqdm(
        examples.batches(config.batch_size), total=-(-len(examples) // config.batch_size), desc="attribution", leave=False
    ):
        leaves: dict[int, torch.Tensor] = {}
        fwd_hooks = [(hooks[layer], partial(_attribution_hook, sae=saes[layer], leaves=leaves, layer=layer)) for layer in config.layers]
        with torch.enable_grad():
            logits = backbone.model.run_with_hooks(tokens.to(backbone.device), fwd_hooks=fwd_hooks)
            metric = target_log_prob(logits, position, target).sum()  # examples are independent: per-example gradients
            grads = torch.autograd.grad(metric, [leaves[layer] for layer in config.layers])
        for layer, grad in zip(config.layers, grads, strict=True):
            effect = (means[layer] - leaves[layer].detach()) * grad
            totals[layer] += effect.double().sum(dim=(0, 1)).cpu()
    attribution = torch.cat([totals[layer] / len(examples) for layer in config.layers]).numpy()
    return attribution, node_index(saes, config), mean_codes


def _splice_hook(x: torch.Tensor, hook: Any, sae: Any, kept: torch.Tensor, mean: torch.Tensor, keep_error_term: bool) -> torch.Tensor:
    """Positions > 0: codes' = where(kept, codes, mean); resid = decode(codes') (+ the SAE error term)."""
    residual = x[:, 1:]
    codes = sae.encode(residual)
    decoded = sae.decode(torch.where(kept, codes, mean))
    # x + decode(codes') − decode(codes) = decode(codes') + error, written so that keeping every feature returns x bit for bit
    patched = residual + (decoded - sae.decode(codes)) if keep_error_term else decoded
    return torch.cat([x[:, :1], patched.to(x.dtype)], dim=1)


def circuit_metric_fn(
    backbone: Backbone,
    saes: Mapping[int, Any],
    examples: BehaviourExamples,
    mean_codes: Mapping[int, np.ndarray],
    config: CircuitConfig,
) -> Callable[[np.ndarray], np.ndarray]:
    """``mask [n_nodes] -> per-example target log-prob`` with the unkept features mean-ablated.

    At each layer (in increasing order, so later layers see the modified upstream) the
    residual at positions > 0 becomes decode(where(kept, codes, mean_code)), plus the SAE
    error term when ``config.keep_error_term`` (all kept then reproduces the clean model).
    """
    hooks = _check_saes(backbone, saes, config)
    slices = _layer_slices(saes, config)
    n_nodes = max(s.stop for s in slices.values())
    means = {layer: torch.as_tensor(np.asarray(mean_codes[layer]), dtype=torch.float32).to(backbone.device) for layer in config.layers}

    @torch.no_grad()
    def evaluate(kept: np.ndarray) -> np.ndarray:
        mask = np.asarray(kept)
        if mask.shape != (n_nodes,) or mask.dtype != bool:
            raise InputError(f"circuit mask: expected a boolean array over the {n_nodes} nodes, got {mask.dtype} {mask.shape}")
        fwd_hooks = [
            (
                hooks[layer],
                partial(
                    _splice_hook,
                    sae=saes[layer],
                    kept=torch.from_numpy(mask[slices[layer]].copy()).to(backbone.device),
                    mean=means[layer],
                    keep_error_term=config.keep_error_term,
                ),
            )
            for layer in config.layers
        ]
        values = [
            target_log_prob(backbone.model.run_with_hooks(tokens.to(backbone.device), fwd_hooks=fwd_hooks), position, target)
            for tokens, position, target in examples.batches(config.batch_size)
        ]
        return torch.cat(values).double().cpu().numpy()

    return evaluate


@torch.no_grad()
def clean_metric(backbone: Backbone, examples: BehaviourExamples, batch_size: int = 16) -> np.ndarray:
    """Per-example target log-prob of the unmodified model."""
    values = [
        target_log_prob(backbone.model(tokens.to(backbone.device)), position, target)
        for tokens, position, target in examples.batches(batch_size)
    ]
    return torch.cat(values).double().cpu().numpy()


# --------------------------------------------------------------------------- result


@dataclass(frozen=True, eq=False)
class CircuitResult:
    """Faithfulness curve of attribution-ranked feature circuits vs random feature sets."""

    config: CircuitConfig
    n_examples: int
    n_nodes: int
    clean_metric: float
    full_metric: float
    empty_metric: float
    curve: pd.DataFrame
    top_nodes: list[dict[str, Any]]

    def to_dict(self) -> dict[str, Any]:
        """JSON-able detail (validates against :data:`RESULT_SCHEMA`)."""
        return to_jsonable(
            {
                "config": asdict(self.config),
                "metric": METRIC_NAME,
                "ranking": RANKING,
                "layers": list(self.config.layers),
                "n_examples": self.n_examples,
                "n_nodes": self.n_nodes,
                "clean_metric": self.clean_metric,
                "full_metric": self.full_metric,
                "empty_metric": self.empty_metric,
                "curve": self.curve,
                "top_nodes": self.top_nodes,
            }
        )

    def table(self) -> pd.DataFrame:
        """The faithfulness curve, one row per K."""
        return self.curve.copy()


def run_circuit_faithfulness(
    backbone: Backbone, saes: Mapping[int, Any], examples: BehaviourExamples, config: CircuitConfig
) -> CircuitResult:
    """Attribute, then measure faithfulness of top-K vs random K-feature circuits (see the module docstring)."""
    attribution, nodes, mean_codes = sae_feature_attribution(backbone, saes, examples, config)
    evaluate = circuit_metric_fn(backbone, saes, examples, mean_codes, config)
    ks = [k for k in config.ks if k <= len(nodes)]
    if not ks:
        raise InputError(f"CircuitConfig.ks: every K in {list(config.ks)} exceeds the {len(nodes)} SAE features at layers {list(config.layers)}")
    curve, full, empty = _curve_with_endpoints(attribution, evaluate, ks, config.n_random, config.n_boot, config.seed)
    order = rank_nodes(attribution)[: max(ks)]
    top_nodes = [
        {"rank": rank, "layer": nodes[i][0], "feature": nodes[i][1], "attribution": float(attribution[i])}
        for rank, i in enumerate(order.tolist())
    ]
    return CircuitResult(
        config=config,
        n_examples=len(examples),
        n_nodes=len(nodes),
        clean_metric=float(clean_metric(backbone, examples, config.batch_size).mean()),
        full_metric=float(full.mean()),
        empty_metric=float(empty.mean()),
        curve=curve,
        top_nodes=top_nodes,
    )


def headline(result: CircuitResult) -> dict[str, Any]:
    """Gap top − random at the largest K ≤ 20 (the smallest K if all exceed 20), null 0."""
    curve = result.curve
    small = curve[curve["k"] <= HEADLINE_MAX_K]
    row = (small if len(small) else curve.nsmallest(1, "k")).iloc[-1]
    return to_jsonable(
        {
            "metric": f"faithfulness_gap_top_minus_random_k{int(row['k'])}",
            "value": float(row["gap"]),
            "ci_low": float(row["gap_ci_low"]),
            "ci_high": float(row["gap_ci_high"]),
            "null": 0.0,
            "claim": CLAIM,
        }
    )


def plot_faithfulness(result: CircuitResult, path: str | os.PathLike) -> Path:
    """Faithfulness vs K: attribution-ranked circuit (line) vs random K-sets (mean ± SD band)."""
    from matplotlib.figure import Figure

    curve = result.curve
    figure = Figure(figsize=(5, 3.5))
    axis = figure.subplots()
    low = curve["faithfulness_random_mean"] - curve["faithfulness_random_sd"]
    high = curve["faithfulness_random_mean"] + curve["faithfulness_random_sd"]
    axis.fill_between(curve["k"], low, high, color="tab:gray", alpha=0.3, label="random K features (mean ± SD)")
    axis.plot(curve["k"], curve["faithfulness_random_mean"], color="tab:gray", marker="o")
    axis.plot(curve["k"], curve["faithfulness_top"], color="tab:blue", marker="o", label="top-K by |attribution|")
    axis.axhline(1.0, color="black", linestyle=":", linewidth=1)
    axis.axhline(0.0, color="black", linewidth=0.5)
    axis.set_xscale("log")
    axis.set_xlabel("features kept (K)")
    axis.set_ylabel("faithfulness")
    axis.set_title(f"feature circuit, layers {list(result.config.layers)}, {result.n_examples} examples")
    axis.legend(fontsize=8)
    figure.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=120)
    return path


_NUMBER = {"type": "number"}
_NULLABLE_NUMBER = {"type": ["number", "null"]}
RESULT_SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "title": "CircuitResult",
    "type": "object",
    "additionalProperties": False,
    "required": [
        "config", "metric", "ranking", "layers", "n_examples", "n_nodes",
        "clean_metric", "full_metric", "empty_metric", "curve", "top_nodes",
    ],
    "properties": {
        "config": {
            "type": "object",
            "additionalProperties": False,
            "required": [f.name for f in fields(CircuitConfig)],
            "properties": {
                "layers": {"type": "array", "items": {"type": "integer", "minimum": 0}, "minItems": 1},
                "ks": {"type": "array", "items": {"type": "integer", "minimum": 1}, "minItems": 1},
                "n_random": {"type": "integer", "minimum": 1},
                "n_boot": {"type": "integer", "minimum": 1},
                "seed": {"type": "integer", "minimum": 0},
                "batch_size": {"type": "integer", "minimum": 1},
                "keep_error_term": {"type": "boolean"},
            },
        },
        "metric": {"const": METRIC_NAME},
        "ranking": {"const": RANKING},
        "layers": {"type": "array", "items": {"type": "integer", "minimum": 0}, "minItems": 1},
        "n_examples": {"type": "integer", "minimum": 2},
        "n_nodes": {"type": "integer", "minimum": 1},
        "clean_metric": _NUMBER,
        "full_metric": _NUMBER,
        "empty_metric": _NUMBER,
        "curve": {
            "type": "array",
            "minItems": 1,
            "items": {
                "type": "object",
                "additionalProperties": False,
                "required": list(CURVE_COLUMNS),
                "properties": {
                    "k": {"type": "integer", "minimum": 1},
                    "faithfulness_top": _NUMBER,
                    "faithfulness_random_mean": _NUMBER,
                    "faithfulness_random_sd": {"type": "number", "minimum": 0},
                    "gap": _NUMBER,
                    "gap_ci_low": _NULLABLE_NUMBER,
                    "gap_ci_high": _NULLABLE_NUMBER,
                },
            },
        },
        "top_nodes": {
            "type": "array",
            "items": {
                "type": "object",
                "additionalProperties": False,
                "required": ["rank", "layer", "feature", "attribution"],
                "properties": {
                    "rank": {"type": "integer", "minimum": 0},
                    "layer": {"type": "integer", "minimum": 0},
                    "feature": {"type": "integer", "minimum": 0},
                    "attribution": _NUMBER,
                },
            },
        },
    },
}
