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

Structure: :func:`~.faithfulness.faithfulness_curve` is model-free (numpy; any ``evaluate_kept``);
the rest is TransformerLens glue. Why hand-written: no library implements attribution
patching over sae-lens features on TransformerLens hooks (Marks et al.'s
``feature-circuits`` is built on nnsight and its own dictionary classes).
"""


from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import partial
from typing import Any

import numpy as np
import pandas as pd
import torch
from tqdm.auto import tqdm

from sae_difficulty.evals.base import EvalResult
from sae_difficulty.evals.circuit.config import CircuitConfig
from sae_difficulty.evals.circuit.faithfulness import curve_with_endpoints, rank_nodes
from sae_difficulty.evals.circuit.output import METRIC_NAME, RANKING, CircuitOutput
from sae_difficulty.modalities.llm.backbone import Backbone, check_layer
from sae_difficulty.modalities.llm.scoring import token_nll
from sae_difficulty.utils.errors import InputError
from sae_difficulty.utils.io import to_jsonable

HEADLINE_MAX_K = 20
CLAIM = (
    "a few attribution-ranked SAE features recover most of a behaviour, far more than random features "
    "(Marks et al. 2024, Sparse Feature Circuits)"
)


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
class CircuitResult(EvalResult):
    """Faithfulness curve of attribution-ranked feature circuits vs random feature sets."""

    config: CircuitConfig
    n_examples: int
    n_nodes: int
    clean_metric: float
    full_metric: float
    empty_metric: float
    curve: pd.DataFrame
    top_nodes: list[dict[str, Any]]

    OUTPUT = CircuitOutput

    def document(self) -> dict[str, Any]:
        """The JSON detail (see :class:`CircuitOutput`)."""
        return (
            {
                "config": self.config.to_dict(),
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
    curve, full, empty = curve_with_endpoints(attribution, evaluate, ks, config.n_random, config.n_boot, config.seed)
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
