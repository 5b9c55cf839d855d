"""Loading SAEs saved in external formats, and each format's own encoding recomputed in numpy.

SAEs trained elsewhere arrive in other formats: sae-lens directories (``cfg.json`` +
``sae_weights.safetensors``), the ``dictionary_learning`` / SAEBench ``AutoEncoder``
checkpoints (``ae.pt``) and EleutherAI sparsify's per-hookpoint folders (``cfg.json`` +
``sae.safetensors``). Why hand-written: sae-lens converts ``dictionary_learning`` and
sparsify checkpoints only from the Hugging Face hub (its ``*_huggingface_loader``
functions); here the same state-dict mappings are applied to local files through
``SAE.load_from_disk``'s ``converter`` hook. The numpy encoders are deliberately
independent of sae-lens: they are the reference the loaded SAE is checked against.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
from sae_lens import SAE
from sae_lens.constants import SAE_CFG_FILENAME, SAE_WEIGHTS_FILENAME

from sae_difficulty.utils.errors import InputError

FORMATS = ("saelens", "dictionary_learning", "sparsify")
DICTIONARY_LEARNING_FILENAME = "ae.pt"
SPARSIFY_CFG_FILENAME, SPARSIFY_WEIGHTS_FILENAME = "cfg.json", "sae.safetensors"
_SPARSIFY_KEYS = ("encoder.weight", "encoder.bias", "W_dec", "b_dec")
# dictionary_learning AutoEncoder (ReLU) and AutoEncoderTopK state-dict keys
_DL_RELU_KEYS = ("encoder.weight", "encoder.bias", "decoder.weight", "bias")
_DL_TOPK_KEYS = ("encoder.weight", "encoder.bias", "decoder.weight", "b_dec", "k")


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


def _read_sparsify(path: str | os.PathLike) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    """The ``cfg.json`` and tensors of a sparsify hookpoint folder, refusing what a TopK SAE cannot express."""
    from safetensors.torch import load_file

    path = Path(path)
    for filename in (SPARSIFY_CFG_FILENAME, SPARSIFY_WEIGHTS_FILENAME):
        if not (path / filename).is_file():
            raise InputError(f"sparsify SAE {path}: missing {filename} (sparsify format: one folder per hookpoint with "
                             f"{SPARSIFY_CFG_FILENAME} + {SPARSIFY_WEIGHTS_FILENAME})")  # fmt: skip
    cfg = json.loads((path / SPARSIFY_CFG_FILENAME).read_text())
    for key, allowed in (("activation", "topk"), ("transcode", False), ("skip_connection", False)):
        if cfg.get(key, allowed) != allowed:
            raise InputError(f"sparsify SAE {path}: {key}={cfg[key]!r} is unsupported; expected {allowed!r} (a TopK SAE)")
    if "d_in" not in cfg or "k" not in cfg:
        raise InputError(f"sparsify SAE {path}: {SPARSIFY_CFG_FILENAME} lacks d_in or k (keys {sorted(cfg)})")
    state = load_file(path / SPARSIFY_WEIGHTS_FILENAME)
    missing = [key for key in _SPARSIFY_KEYS if key not in state]
    if missing:
        raise InputError(f"sparsify SAE {path}: {SPARSIFY_WEIGHTS_FILENAME} lacks {missing} (has {sorted(state)})")
    return cfg, state


def sparsify_disk_loader(
    path: str | os.PathLike, device: str = "cpu", cfg_overrides: dict[str, Any] | None = None
) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    """A ``SAE.load_from_disk`` converter for a local sparsify hookpoint folder.

    sparsify encodes ``topk(relu((x - b_dec) @ encoder.weight.T + encoder.bias), k)`` and
    decodes ``codes @ W_dec + b_dec``; sae-lens's TopK SAE with ``W_enc =
    encoder.weight.T``, ``W_dec = W_dec`` and ``apply_b_dec_to_input=True`` computes the same.
    """
    cfg_file, state = _read_sparsify(path)
    encoder_weight = state["encoder.weight"].float()
    cfg: dict[str, Any] = {
        "architecture": "topk",
        "d_in": int(cfg_file["d_in"]),
        "d_sae": int(encoder_weight.shape[0]),
        "k": int(cfg_file["k"]),
        "dtype": "float32",
        "device": device,
        "apply_b_dec_to_input": True,
        "normalize_activations": "none",
        "metadata": {"source_format": "sparsify", "source_path": str(path)},
    }
    cfg.update(cfg_overrides or {})
    weights = {
        "W_enc": encoder_weight.T.contiguous(),
        "b_enc": state["encoder.bias"].float(),
        "W_dec": state["W_dec"].float().contiguous(),
        "b_dec": state["b_dec"].float(),
    }
    return cfg, {name: tensor.to(device) for name, tensor in weights.items()}


def load_external_sae(path: str | os.PathLike, format: str, device: str = "cpu") -> SAE[Any]:
    """Load an SAE saved in ``format`` (``saelens`` or ``sparsify`` directory, ``dictionary_learning`` ``ae.pt``) as a sae-lens SAE."""
    from sae_difficulty.saes.loading import load_sae

    if _check_format(format) == "saelens":
        return load_sae(path, device=device)
    if format == "sparsify":
        _read_sparsify(path)  # one-line refusals before sae-lens sees the folder
        return SAE.load_from_disk(Path(path), device=device, converter=sparsify_disk_loader).eval()
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


def _sparsify_codes(path: str | os.PathLike, x: np.ndarray) -> np.ndarray:
    cfg, tensors = _read_sparsify(path)
    state = {name: tensor.detach().double().numpy() for name, tensor in tensors.items()}
    post = _relu((x - state["b_dec"]) @ state["encoder.weight"].T + state["encoder.bias"])
    return _top_k_rows(post, int(cfg["k"]))


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
    jumprelu), ``normalize_activations='none'`` only. ``sparsify``: top-``k`` of
    ``relu((x - b_dec) @ encoder.weight.T + encoder.bias)``.
    """
    x = np.asarray(rows, dtype=np.float64)
    if x.ndim != 2:
        raise InputError(f"rows: expected a 2-D array [n, d_in], got shape {x.shape}")
    if _check_format(format) == "dictionary_learning":
        return _dictionary_learning_codes(path, x)
    if format == "sparsify":
        return _sparsify_codes(path, x)
    return _saelens_codes(path, x)
