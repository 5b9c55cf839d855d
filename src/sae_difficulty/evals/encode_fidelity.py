"""An SAE loaded from an external format must reproduce its source's own codes.

SAEs trained elsewhere arrive in other formats: sae-lens directories (``cfg.json`` +
``sae_weights.safetensors``) and the ``dictionary_learning`` / SAEBench ``AutoEncoder``
checkpoints (``ae.pt``). A conversion that silently drops a detail (most often the
decoder-bias shift: ``dictionary_learning`` encodes ``x - bias``) yields an SAE that
loads, reconstructs plausibly and has *different features*. This check encodes the
same activation rows twice, once with the loaded sae-lens SAE and once with the
source format's own encoding recomputed from the raw tensors in numpy, and refuses
the SAE when the codes disagree.

Why hand-written: sae-lens converts ``dictionary_learning`` checkpoints only from the
Hugging Face hub (``dictionary_learning_sae_huggingface_loader_1``); here the same
state-dict mapping is applied to a local file through ``SAE.load_from_disk``'s
``converter`` hook. The numpy encoders are deliberately independent of sae-lens:
they are the reference the loaded SAE is checked against.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from sae_lens import SAE
from sae_lens.constants import SAE_CFG_FILENAME, SAE_WEIGHTS_FILENAME

from sae_difficulty.evals.common import reject_unknown_keys
from sae_difficulty.utils.errors import InputError
from sae_difficulty.utils.io import to_jsonable

FORMATS = ("saelens", "dictionary_learning")
DICTIONARY_LEARNING_FILENAME = "ae.pt"
# dictionary_learning AutoEncoder (ReLU) and AutoEncoderTopK state-dict keys
_DL_RELU_KEYS = ("encoder.weight", "encoder.bias", "decoder.weight", "bias")
_DL_TOPK_KEYS = ("encoder.weight", "encoder.bias", "decoder.weight", "b_dec", "k")
_LIKELY_CAUSE = "decoder-bias shift (b_dec) not applied to the input?"


# --------------------------------------------------------------------------- config


@dataclass(frozen=True)
class EncodeFidelityConfig:
    """How many rows to encode and how close the two encodings must be.

    A row matches when every code agrees within ``atol + rtol * |source code|``; the
    SAE passes when at least ``min_match_fraction`` of the rows match.
    """

    n_rows: int = 1024
    atol: float = 1e-4
    rtol: float = 1e-3
    min_match_fraction: float = 1.0

    def __post_init__(self) -> None:
        if isinstance(self.n_rows, bool) or not isinstance(self.n_rows, (int, np.integer)) or self.n_rows < 1:
            raise InputError(f"EncodeFidelityConfig.n_rows: expected an integer >= 1, got {self.n_rows!r}")
        for name in ("atol", "rtol"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not value >= 0:
                raise InputError(f"EncodeFidelityConfig.{name}: expected a number >= 0, got {value!r}")
        fraction = self.min_match_fraction
        if isinstance(fraction, bool) or not isinstance(fraction, (int, float)) or not 0 < fraction <= 1:
            raise InputError(f"EncodeFidelityConfig.min_match_fraction: expected a number in (0, 1], got {fraction!r}")

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> EncodeFidelityConfig:
        """Build from a config mapping; one-line InputError on unknown keys."""
        reject_unknown_keys(values, (f.name for f in fields(cls)), "encode_fidelity config")
        return cls(**dict(values))


# --------------------------------------------------------------------------- loading


def _check_format(format: str) -> str:
    if format not in FORMATS:
        raise InputError(f"SAE format {format!r} is not supported; expected one of {list(FORMATS)}")
    return format


def _dictionary_learning_file(path: str | os.PathLike) -> Path:
    path = Path(path)
    file = path / DICTIONARY_LEARNING_FILENAME if path.is_dir() else path
    if not file.is_file():
        raise InputError(f"dictionary_learning SAE {path}: no checkpoint file (expected {DICTIONARY_LEARNING_FILENAME} or a path to it)")
    return file


def _read_dictionary_learning(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    file = _dictionary_learning_file(path)
    try:
        state = torch.load(file, map_location="cpu", weights_only=True)
    except Exception as error:  # torch raises many types for a corrupt or non-tensor pickle
        raise InputError(f"dictionary_learning SAE {file}: torch.load failed ({type(error).__name__})") from error
    if not isinstance(state, Mapping):
        raise InputError(f"dictionary_learning SAE {file}: expected a state dict, got {type(state).__name__}")
    if not (set(_DL_RELU_KEYS) <= set(state) or set(_DL_TOPK_KEYS) <= set(state)):
        raise InputError(
            f"dictionary_learning SAE {file}: keys {sorted(state)} are neither an AutoEncoder {list(_DL_RELU_KEYS)} "
            f"nor an AutoEncoderTopK {list(_DL_TOPK_KEYS)}"
        )
    return dict(state)


def _is_topk(state: Mapping[str, torch.Tensor]) -> bool:
    return "k" in state and "b_dec" in state


def dictionary_learning_disk_loader(
    path: str | os.PathLike, device: str = "cpu", cfg_overrides: dict[str, Any] | None = None
) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    """A ``SAE.load_from_disk`` converter for a local ``dictionary_learning`` ``ae.pt``.

    Same mapping as sae-lens' hub loader: ``W_enc = encoder.weight.T``, ``W_dec =
    decoder.weight.T``, ``b_enc = encoder.bias``, ``b_dec = bias`` (ReLU AutoEncoder)
    or ``b_dec`` (AutoEncoderTopK, whose ``k`` buffer becomes the TopK ``k``).
    ``apply_b_dec_to_input=True`` because the source encodes ``x - bias``.
    """
    state = _read_dictionary_learning(path)
    encoder_weight = state["encoder.weight"].float()
    d_sae, d_in = (int(size) for size in encoder_weight.shape)
    topk = _is_topk(state)
    cfg: dict[str, Any] = {
        "architecture": "topk" if topk else "standard",
        "d_in": d_in,
        "d_sae": d_sae,
        "dtype": "float32",
        "device": device,
        "apply_b_dec_to_input": True,
        "normalize_activations": "none",
        "metadata": {"source_format": "dictionary_learning", "source_path": str(_dictionary_learning_file(path))},
    }
    if topk:
        cfg["k"] = int(state["k"])
    cfg.update(cfg_overrides or {})
    weights = {
        "W_enc": encoder_weight.T.contiguous(),
        "b_enc": state["encoder.bias"].float(),
        "W_dec": state["decoder.weight"].float().T.contiguous(),
        "b_dec": (state["b_dec"] if topk else state["bias"]).float(),
    }
    return cfg, {name: tensor.to(device) for name, tensor in weights.items()}


def load_external_sae(path: str | os.PathLike, format: str, device: str = "cpu") -> SAE[Any]:
    """Load an SAE saved in ``format`` (``saelens`` directory or ``dictionary_learning`` ``ae.pt``) as a sae-lens SAE."""
    from sae_difficulty.saes.loading import load_sae

    if _check_format(format) == "saelens":
        return load_sae(path, device=device)
    file = _dictionary_learning_file(path)
    return SAE.load_from_disk(file, device=device, converter=dictionary_learning_disk_loader).eval()


def save_dictionary_learning(state: Mapping[str, torch.Tensor], path: str | os.PathLike) -> Path:
    """Write a ``dictionary_learning`` checkpoint (a plain state dict) to ``path`` (a file, or a directory -> ``ae.pt``)."""
    path = Path(path)
    file = path / DICTIONARY_LEARNING_FILENAME if path.suffix != ".pt" else path
    file.parent.mkdir(parents=True, exist_ok=True)
    torch.save({name: torch.as_tensor(value).detach().cpu() for name, value in state.items()}, file)
    return file


# --------------------------------------------------------------------------- reference encoders (numpy)


def _relu(values: np.ndarray) -> np.ndarray:
    return np.maximum(values, 0.0)


def _top_k_rows(post: np.ndarray, k: int) -> np.ndarray:
    """Keep each row's ``k`` largest entries (already non-negative), zero the rest."""
    if k >= post.shape[1]:
        return post
    keep = np.argpartition(-post, k - 1, axis=1)[:, :k]
    out = np.zeros_like(post)
    np.put_along_axis(out, keep, np.take_along_axis(post, keep, axis=1), axis=1)
    return out


def _dictionary_learning_codes(path: str | os.PathLike, x: np.ndarray) -> np.ndarray:
    state = {name: tensor.detach().double().numpy() for name, tensor in _read_dictionary_learning(path).items()}
    shift = state["b_dec"] if _is_topk(state) else state["bias"]
    post = _relu((x - shift) @ state["encoder.weight"].T + state["encoder.bias"])
    return _top_k_rows(post, int(state["k"])) if _is_topk(state) else post


def _saelens_codes(path: str | os.PathLike, x: np.ndarray) -> np.ndarray:
    from safetensors.numpy import load_file

    path = Path(path)
    for filename in (SAE_CFG_FILENAME, SAE_WEIGHTS_FILENAME):
        if not (path / filename).is_file():
            raise InputError(f"saelens SAE {path}: missing {filename}")
    cfg = json.loads((path / SAE_CFG_FILENAME).read_text())
    if cfg.get("normalize_activations", "none") != "none":
        raise InputError(f"saelens SAE {path}: normalize_activations={cfg['normalize_activations']!r} is unsupported; expected 'none'")
    if cfg.get("reshape_activations", "none") != "none":
        raise InputError(f"saelens SAE {path}: reshape_activations={cfg['reshape_activations']!r} is unsupported; expected 'none'")
    weights = {name: np.asarray(value, dtype=np.float64) for name, value in load_file(path / SAE_WEIGHTS_FILENAME).items()}
    architecture = cfg.get("architecture", "standard")
    shift = weights["b_dec"] * float(bool(cfg.get("apply_b_dec_to_input", True)))
    pre = (x - shift) @ weights["W_enc"] + weights["b_enc"]
    if architecture == "standard":
        return _relu(pre)
    if architecture == "jumprelu":
        return _relu(pre) * (pre > weights["threshold"])
    if architecture == "topk":
        if cfg.get("rescale_acts_by_decoder_norm", False):
            pre = pre * np.linalg.norm(weights["W_dec"], axis=1)
        return _top_k_rows(_relu(pre), int(cfg["k"]))
    raise InputError(f"saelens SAE {path}: architecture {architecture!r} is unsupported; expected standard, topk or jumprelu")


def source_codes(path: str | os.PathLike, format: str, rows: np.ndarray) -> np.ndarray:
    """The source format's own codes of ``rows`` [n, d_in], recomputed in float64 numpy from the raw tensors.

    ``dictionary_learning``: ``relu((x - bias) @ encoder.weight.T + encoder.bias)``
    (TopK checkpoints: top-``k`` of that per row, with ``b_dec`` as the shift).
    ``saelens``: the architecture's encode read from ``cfg.json`` (standard, topk,
    jumprelu), ``normalize_activations='none'`` only.
    """
    x = np.asarray(rows, dtype=np.float64)
    if x.ndim != 2:
        raise InputError(f"rows: expected a 2-D array [n, d_in], got shape {x.shape}")
    if _check_format(format) == "dictionary_learning":
        return _dictionary_learning_codes(path, x)
    return _saelens_codes(path, x)


# --------------------------------------------------------------------------- check


@dataclass(frozen=True, eq=False)
class EncodeFidelityResult:
    """Agreement of a loaded SAE's codes with its source's own encoding on the same rows.

    Per-row arrays feed :meth:`table`; :meth:`to_dict` holds the summary.
    """

    path: str
    format: str
    config: EncodeFidelityConfig
    n_rows: int
    d_sae: int
    max_abs_diff: float
    fraction_rows_matching: float
    mean_active_jaccard: float
    passed: bool
    row_max_abs_diff: np.ndarray
    row_matches: np.ndarray
    row_active_jaccard: np.ndarray
    row_l0_sae: np.ndarray
    row_l0_source: np.ndarray

    def to_dict(self) -> dict[str, Any]:
        """JSON-able summary (validates against :data:`RESULT_SCHEMA`)."""
        return to_jsonable(
            {
                "path": self.path,
                "format": self.format,
                "config": asdict(self.config),
                "n_rows": self.n_rows,
                "d_sae": self.d_sae,
                "max_abs_diff": self.max_abs_diff,
                "fraction_rows_matching": self.fraction_rows_matching,
                "mean_active_jaccard": self.mean_active_jaccard,
                "mean_l0_sae": float(np.mean(self.row_l0_sae)),
                "mean_l0_source": float(np.mean(self.row_l0_source)),
                "passed": self.passed,
            }
        )

    def table(self) -> pd.DataFrame:
        """One row per encoded activation row."""
        return pd.DataFrame(
            {
                "row": np.arange(self.n_rows),
                "max_abs_diff": self.row_max_abs_diff,
                "matches": self.row_matches,
                "active_jaccard": self.row_active_jaccard,
                "l0_sae": self.row_l0_sae,
                "l0_source": self.row_l0_source,
            }
        )


_NUMBER = {"type": "number"}
RESULT_SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "title": "EncodeFidelityResult",
    "type": "object",
    "additionalProperties": False,
    "required": [
        "path", "format", "config", "n_rows", "d_sae", "max_abs_diff", "fraction_rows_matching",
        "mean_active_jaccard", "mean_l0_sae", "mean_l0_source", "passed",
    ],
    "properties": {
        "path": {"type": "string"},
        "format": {"enum": list(FORMATS)},
        "config": {
            "type": "object",
            "additionalProperties": False,
            "required": ["n_rows", "atol", "rtol", "min_match_fraction"],
            "properties": {
                "n_rows": {"type": "integer", "minimum": 1},
                "atol": {"type": "number", "minimum": 0},
                "rtol": {"type": "number", "minimum": 0},
                "min_match_fraction": {"type": "number", "exclusiveMinimum": 0, "maximum": 1},
            },
        },
        "n_rows": {"type": "integer", "minimum": 1},
        "d_sae": {"type": "integer", "minimum": 1},
        "max_abs_diff": {"type": "number", "minimum": 0},
        "fraction_rows_matching": {"type": "number", "minimum": 0, "maximum": 1},
        "mean_active_jaccard": {"type": "number", "minimum": 0, "maximum": 1},
        "mean_l0_sae": _NUMBER,
        "mean_l0_source": _NUMBER,
        "passed": {"type": "boolean"},
    },
}


def _jaccard(active_a: np.ndarray, active_b: np.ndarray) -> np.ndarray:
    """Row-wise Jaccard of two boolean [n, d] active sets; two empty sets agree (1)."""
    union = (active_a | active_b).sum(axis=1)
    intersection = (active_a & active_b).sum(axis=1)
    return np.where(union > 0, intersection / np.maximum(union, 1), 1.0)


@torch.no_grad()
def check_encode_fidelity(
    sae: SAE[Any],
    path: str | os.PathLike,
    format: str,
    rows: np.ndarray,
    config: EncodeFidelityConfig | None = None,
) -> EncodeFidelityResult:
    """Encode the first ``config.n_rows`` of ``rows`` with ``sae`` and with the source format at ``path``; compare."""
    config = config or EncodeFidelityConfig()
    x = np.asarray(rows, dtype=np.float32)
    if x.ndim != 2 or x.shape[0] == 0 or x.shape[1] != int(sae.cfg.d_in):
        raise InputError(f"rows: expected a non-empty [n, {sae.cfg.d_in}] array for SAE {path}, got shape {x.shape}")
    x = x[: config.n_rows]
    reference = source_codes(path, format, x)
    if reference.shape != (x.shape[0], int(sae.cfg.d_sae)):
        raise InputError(f"SAE {path}: the source encodes to {reference.shape[1]} features, the loaded SAE has d_sae={sae.cfg.d_sae}")
    device = getattr(sae, "device", "cpu")
    loaded = sae.encode(torch.from_numpy(x).to(device)).double().cpu().numpy()
    difference = np.abs(loaded - reference)
    row_matches = (difference <= config.atol + config.rtol * np.abs(reference)).all(axis=1)
    active_loaded, active_reference = loaded > 0, reference > 0
    row_jaccard = _jaccard(active_loaded, active_reference)
    fraction = float(row_matches.mean())
    return EncodeFidelityResult(
        path=str(path),
        format=format,
        config=config,
        n_rows=int(x.shape[0]),
        d_sae=int(sae.cfg.d_sae),
        max_abs_diff=float(difference.max()),
        fraction_rows_matching=fraction,
        mean_active_jaccard=float(row_jaccard.mean()),
        passed=fraction >= config.min_match_fraction,
        row_max_abs_diff=difference.max(axis=1),
        row_matches=row_matches,
        row_active_jaccard=row_jaccard,
        row_l0_sae=active_loaded.sum(axis=1),
        row_l0_source=active_reference.sum(axis=1),
    )


def require_encode_fidelity(
    sae: SAE[Any],
    path: str | os.PathLike,
    format: str,
    rows: np.ndarray,
    config: EncodeFidelityConfig | None = None,
) -> EncodeFidelityResult:
    """:func:`check_encode_fidelity`, raising a one-line InputError when the SAE does not reproduce its source."""
    result = check_encode_fidelity(sae, path, format, rows, config)
    if not result.passed:
        raise InputError(
            f"SAE {path} ({format}): loaded codes differ from the source's own encoding "
            f"(max abs diff {result.max_abs_diff:.4g}, {result.fraction_rows_matching:.1%} of {result.n_rows} rows match, "
            f"active-set Jaccard {result.mean_active_jaccard:.3f}); likely cause: {_LIKELY_CAUSE}"
        )
    return result


def headline(result: EncodeFidelityResult) -> dict[str, Any]:
    """The run-ledger line: the largest code difference (a check, not a literature claim)."""
    return {
        "metric": "max_abs_code_difference",
        "value": float(result.max_abs_diff),
        "ci_low": None,
        "ci_high": None,
        "null": None,
        "claim": "",
    }


def plot_encode_fidelity(result: EncodeFidelityResult, path: str | os.PathLike) -> Path:
    """Histogram of per-row max |code difference| (log scale) with the tolerance marked."""
    from matplotlib.figure import Figure

    figure = Figure(figsize=(5, 3.2))
    axis = figure.subplots()
    values = np.maximum(result.row_max_abs_diff, 1e-12)
    bins = np.logspace(-12, max(0.0, float(np.log10(values.max())) + 0.5), 40)
    axis.hist(values, bins=bins, color="tab:blue")
    axis.set_xscale("log")
    axis.axvline(result.config.atol, color="tab:red", linestyle="--", label=f"atol {result.config.atol:g}")
    axis.set_xlabel("per-row max |loaded code − source code|")
    axis.set_ylabel("rows")
    axis.set_title(f"encode fidelity ({result.format}): {'passed' if result.passed else 'FAILED'}")
    axis.legend()
    figure.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=120)
    return path
