"""A transformer that groks (a + b) mod p: the ground-truth backbone of the stability study.

The setup follows Nanda et al. (2023, "Progress measures for grokking via mechanistic
interpretability"): inputs are the three tokens ``a b =`` (vocabulary ``0..p-1`` plus
``=`` as token ``p``), the answer ``(a + b) mod p`` is read from the logits at the
``=`` position, the model is a TransformerLens ``HookedTransformer`` with ReLU MLPs and
no LayerNorm (so the residual stream is a linear sum of embedding, attention and MLP
outputs and the Fourier analysis of ``W_E``/``W_U`` is exact), trained full batch with
AdamW and strong weight decay on a random fraction of the ``p*p`` pairs. The model
first memorizes the training pairs, then (driven by weight decay) generalizes to all
of them: the "grokking" whose end state uses a handful of key frequencies.

The training loop is written here because TransformerLens' ``train`` helper is built
for language-model datasets (next-token loss over all positions, mini-batches from a
``DataLoader``), while grokking needs the full-batch, last-position loss with the
test accuracy tracked for early stopping.
"""

from __future__ import annotations

import dataclasses
import math
import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from safetensors.torch import load_file, save_file
from tqdm.auto import tqdm
from transformer_lens import HookedTransformer, HookedTransformerConfig

from sae_difficulty.utils.errors import InputError
from sae_difficulty.utils.io import read_json, write_json
from sae_difficulty.utils.numerics import pinned_blas

MODEL_CONFIG = "config.json"
MODEL_WEIGHTS = "model.safetensors"
ADAM_BETAS = (0.9, 0.98)  # Nanda et al.'s grokking runs


class GrokkingError(InputError):
    """The trained model did not reach the required test accuracy (the config must change)."""


def is_prime(n: int) -> bool:
    return n >= 2 and all(n % q for q in range(2, math.isqrt(n) + 1))


@dataclass(frozen=True)
class GrokkingSpec:
    """Everything that determines the trained modular-addition model (the store hashes it).

    ``eval_every``: steps between evaluations of the full train and test sets (the
    training curves' resolution). Training stops early once the test accuracy has been
    at least ``stop_at_test_accuracy`` at every evaluation for ``stop_window`` steps;
    after training, a test accuracy below ``min_test_accuracy`` is a :class:`GrokkingError`.
    The defaults mirror ``config/schema.yaml``'s ``modular`` section (a test checks it).
    """

    p: int = 113
    train_fraction: float = 0.5
    d_model: int = 128
    n_heads: int = 4
    n_layers: int = 2
    d_mlp: int = 512
    lr: float = 3e-3
    weight_decay: float = 1.0
    train_steps: int = 3000
    eval_every: int = 50
    stop_at_test_accuracy: float = 1.0
    stop_window: int = 100
    min_test_accuracy: float = 1.0
    seed: int = 0

    def __post_init__(self) -> None:
        def fail(key: str, expected: str) -> None:
            raise InputError(f"modular: '{key}' = {getattr(self, key)!r}, expected {expected}")

        def is_int(value: Any, minimum: int) -> bool:
            return isinstance(value, int) and not isinstance(value, bool) and value >= minimum

        for key in ("p", "d_model", "n_heads", "n_layers", "d_mlp", "train_steps", "eval_every"):
            if not is_int(getattr(self, key), 1):
                fail(key, "an integer >= 1")
        for key in ("seed", "stop_window"):
            if not is_int(getattr(self, key), 0):
                fail(key, "an integer >= 0")
        if not is_prime(self.p) or self.p < 3:
            fail("p", "an odd prime (the Fourier basis of Z_p has (p-1)/2 frequencies)")
        if self.d_model % self.n_heads:
            fail("n_heads", f"a divisor of d_model={self.d_model}")
        if not 0 < self.train_fraction < 1:
            fail("train_fraction", "a number in (0, 1)")
        if not self.lr > 0 or self.weight_decay < 0:
            fail("lr" if not self.lr > 0 else "weight_decay", "lr > 0 and weight_decay >= 0")
        for key in ("stop_at_test_accuracy", "min_test_accuracy"):
            if not 0 <= getattr(self, key) <= 1:
                fail(key, "a number in [0, 1]")

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> GrokkingSpec:
        """Build from the backbone node's params; unknown keys give a one-line error."""
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise InputError(f"modular backbone: unknown key(s) {unknown}; known keys are {sorted(known)}")
        return cls(**dict(values))

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @property
    def equals_token(self) -> int:
        return self.p


# --------------------------------------------------------------------------- data


def all_pairs(p: int) -> np.ndarray:
    """Every input ``(a, b)`` as int64 ``[p*p, 2]``, ``a``-major (row ``a*p + b``)."""
    a, b = np.divmod(np.arange(p * p, dtype=np.int64), p)
    return np.stack([a, b], axis=1)


def input_tokens(pairs: np.ndarray, p: int) -> torch.Tensor:
    """Token sequences ``[a, b, =]`` (``=`` is token ``p``) for ``pairs [n, 2]``."""
    pairs = np.asarray(pairs, dtype=np.int64)
    equals = np.full((pairs.shape[0], 1), p, dtype=np.int64)
    return torch.from_numpy(np.concatenate([pairs, equals], axis=1))


def train_mask(p: int, train_fraction: float, seed: int) -> np.ndarray:
    """Boolean ``[p*p]``: which pairs (in :func:`all_pairs` order) are training pairs.

    A seeded permutation; the first ``round(train_fraction * p*p)`` pairs train.
    """
    n = p * p
    n_train = int(round(train_fraction * n))
    if not 0 < n_train < n:
        raise InputError(f"modular: train_fraction {train_fraction} leaves no train or no test pairs for p={p}")
    order = np.random.default_rng(seed).permutation(n)
    mask = np.zeros(n, dtype=bool)
    mask[order[:n_train]] = True
    return mask


# --------------------------------------------------------------------------- model


def model_config(spec: GrokkingSpec) -> HookedTransformerConfig:
    """Nanda et al.'s grokking transformer: no LayerNorm, ReLU MLP, learned positions, untied unembedding."""
    return HookedTransformerConfig(
        n_layers=spec.n_layers,
        d_model=spec.d_model,
        n_heads=spec.n_heads,
        d_head=spec.d_model // spec.n_heads,
        d_mlp=spec.d_mlp,
        d_vocab=spec.p + 1,
        d_vocab_out=spec.p,
        n_ctx=3,
        act_fn="relu",
        normalization_type=None,
        device="cpu",
        seed=spec.seed,
        default_prepend_bos=False,
    )


def build_model(spec: GrokkingSpec) -> HookedTransformer:
    """A freshly initialized model; the initialization is seeded with ``spec.seed``."""
    torch.manual_seed(spec.seed)
    return HookedTransformer(model_config(spec))


def _last_logits(model: HookedTransformer, tokens: torch.Tensor) -> torch.Tensor:
    return model(tokens, return_type="logits")[:, -1, :]


def _loss_and_accuracy(logits: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, float]:
    # float64 log-softmax: near-zero training loss in float32 rounds to exactly 0 and
    # stalls grokking (Nanda et al. train in float64 for the same reason)
    loss = torch.nn.functional.cross_entropy(logits.to(torch.float64), labels)
    accuracy = float((logits.argmax(dim=-1) == labels).to(torch.float64).mean())
    return loss, accuracy


@dataclass
class GrokkingResult:
    """The trained model, its training curves and a deterministic summary."""

    model: HookedTransformer
    curves: pd.DataFrame
    summary: dict[str, Any]


def train_grokking(spec: GrokkingSpec, progress: bool = True) -> GrokkingResult:
    """Train the modular-addition model full batch with AdamW; deterministic for a spec.

    Evaluates train and test loss/accuracy at initialization, every ``spec.eval_every``
    steps and at the last step. Raises :class:`GrokkingError` when the final test accuracy is below
    ``spec.min_test_accuracy``.
    """
    pairs = all_pairs(spec.p)
    tokens = input_tokens(pairs, spec.p)
    labels = torch.from_numpy((pairs.sum(axis=1) % spec.p).astype(np.int64))
    mask = torch.from_numpy(train_mask(spec.p, spec.train_fraction, spec.seed))
    train_tokens, train_labels = tokens[mask], labels[mask]
    test_tokens, test_labels = tokens[~mask], labels[~mask]
    with pinned_blas(1):
        model = build_model(spec)
        optimizer = torch.optim.AdamW(model.parameters(), lr=spec.lr, weight_decay=spec.weight_decay, betas=ADAM_BETAS)
        train_set, test_set = (train_tokens, train_labels), (test_tokens, test_labels)
        records = [_evaluate(model, 0, train_set, test_set)]
        reached_at: int | None = None
        bar = tqdm(range(1, spec.train_steps + 1), desc=f"grokking p={spec.p}", file=sys.stderr, disable=not progress,
                   mininterval=5.0)  # fmt: skip
        step = 0
        for step in bar:
            model.train()
            loss, _ = _loss_and_accuracy(_last_logits(model, train_tokens), train_labels)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            if step % spec.eval_every and step != spec.train_steps:
                continue
            record = _evaluate(model, step, train_set, test_set)
            records.append(record)
            bar.set_postfix(train_acc=f"{record['train_accuracy']:.3f}", test_acc=f"{record['test_accuracy']:.3f}")
            if record["test_accuracy"] >= spec.stop_at_test_accuracy:
                reached_at = step if reached_at is None else reached_at
                if step - reached_at >= spec.stop_window:
                    break
            else:
                reached_at = None
        bar.close()
    model.eval()
    curves = pd.DataFrame.from_records(records)
    final = records[-1]
    summary = {
        "spec": spec.to_dict(),
        "steps": step,
        "stopped_early": step < spec.train_steps,
        "n_train": int(mask.sum()),
        "n_test": int((~mask).sum()),
        "final": final,
        "memorized_step": _first_step(curves, "train_accuracy", 1.0),
        "grokked_step": _first_step(curves, "test_accuracy", spec.stop_at_test_accuracy),
        "n_parameters": int(sum(p.numel() for p in model.parameters())),
    }
    if final["test_accuracy"] < spec.min_test_accuracy:
        raise GrokkingError(
            f"modular backbone p={spec.p}: test accuracy {final['test_accuracy']:.4f} after {step} steps is below "
            f"min_test_accuracy {spec.min_test_accuracy}; the model did not grok - raise modular.train_steps, or tune "
            f"modular.lr / weight_decay / train_fraction"
        )
    return GrokkingResult(model=model, curves=curves, summary=summary)


@torch.no_grad()
def _evaluate(model: HookedTransformer, step: int, train: tuple, test: tuple) -> dict[str, float]:
    model.eval()
    train_loss, train_accuracy = _loss_and_accuracy(_last_logits(model, train[0]), train[1])
    test_loss, test_accuracy = _loss_and_accuracy(_last_logits(model, test[0]), test[1])
    return {"step": step, "train_loss": float(train_loss), "test_loss": float(test_loss),
            "train_accuracy": train_accuracy, "test_accuracy": test_accuracy}  # fmt: skip


def _first_step(curves: pd.DataFrame, column: str, threshold: float) -> int | None:
    hits = curves.loc[curves[column] >= threshold, "step"]
    return int(hits.iloc[0]) if len(hits) else None


# --------------------------------------------------------------------------- saving and loading


def save_model(model: HookedTransformer, spec: GrokkingSpec, out_dir: str | os.PathLike) -> Path:
    """``config.json`` (the spec) + ``model.safetensors`` (the state dict): deterministic bytes."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    write_json(out_dir / MODEL_CONFIG, spec.to_dict())
    state = {name: tensor.detach().contiguous() for name, tensor in model.state_dict().items()}
    save_file(state, str(out_dir / MODEL_WEIGHTS))
    return out_dir


def load_model(model_dir: str | os.PathLike) -> tuple[HookedTransformer, GrokkingSpec]:
    """Rebuild the model saved by :func:`save_model` (eval mode, CPU) and its spec."""
    model_dir = Path(model_dir)
    for name in (MODEL_CONFIG, MODEL_WEIGHTS):
        if not (model_dir / name).is_file():
            raise InputError(f"modular model {model_dir}: missing {name}; expected a directory written by save_model")
    spec = GrokkingSpec.from_dict(read_json(model_dir / MODEL_CONFIG))
    model = HookedTransformer(model_config(spec))
    try:
        model.load_state_dict(load_file(str(model_dir / MODEL_WEIGHTS)))
    except (RuntimeError, OSError) as error:
        first = str(error).strip().splitlines()[0][:200] if str(error).strip() else type(error).__name__
        raise InputError(f"modular model {model_dir}/{MODEL_WEIGHTS}: cannot load ({first})") from None
    model.eval()
    return model, spec


# --------------------------------------------------------------------------- activations and weights


@torch.no_grad()
def residual_activations(model: HookedTransformer, p: int, layer: int, batch_size: int = 4096) -> np.ndarray:
    """``blocks.{layer}.hook_resid_post`` at the ``=`` position for every pair, float32 ``[p*p, d_model]``.

    Rows follow :func:`all_pairs` (``a*p + b``).
    """
    if not 0 <= layer < model.cfg.n_layers:
        raise InputError(f"modular: layer {layer} out of range; the model has {model.cfg.n_layers} blocks")
    hook = f"blocks.{layer}.hook_resid_post"
    tokens = input_tokens(all_pairs(p), p)
    blocks = []
    for start in range(0, tokens.shape[0], batch_size):
        _, cache = model.run_with_cache(tokens[start : start + batch_size], names_filter=hook, return_type=None)
        blocks.append(cache[hook][:, -1, :].to(torch.float32).numpy())
    return np.concatenate(blocks, axis=0)


def number_embeddings(model: HookedTransformer, p: int) -> np.ndarray:
    """``W_E`` rows of the number tokens ``0..p-1`` as float64 ``[p, d_model]`` (the ``=`` row dropped)."""
    return model.W_E[:p].detach().to(torch.float64).numpy().copy()


def unembedding(model: HookedTransformer) -> np.ndarray:
    """``W_U`` as float64 ``[d_model, p]`` (column ``c`` reads the logit of answer ``c``)."""
    return model.W_U.detach().to(torch.float64).numpy().copy()


# --------------------------------------------------------------------------- figures


def plot_training_curves(curves: pd.DataFrame, path: str | os.PathLike, title: str) -> Path:
    """Loss (log scale) and accuracy of train and test against the step, PNG with deterministic bytes."""
    figure = Figure(figsize=(9, 3.6))
    loss_axis, accuracy_axis = figure.subplots(1, 2)
    for split, colour in (("train", "tab:blue"), ("test", "tab:orange")):
        loss_axis.plot(curves["step"], curves[f"{split}_loss"], color=colour, label=split)
        accuracy_axis.plot(curves["step"], curves[f"{split}_accuracy"], color=colour, label=split)
    loss_axis.set_yscale("log")
    loss_axis.set_xlabel("step")
    loss_axis.set_ylabel("cross-entropy (nats)")
    accuracy_axis.set_xlabel("step")
    accuracy_axis.set_ylabel("accuracy")
    accuracy_axis.set_ylim(-0.02, 1.02)
    for axis in (loss_axis, accuracy_axis):
        axis.legend(loc="center right", fontsize=8)
    figure.suptitle(title)
    figure.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    FigureCanvasAgg(figure)
    figure.savefig(path, dpi=120, format="png", metadata={"Software": None})
    return path
