"""Read SAE checkpoints in sae-lens' format without importing sae-lens.

The format stays sae-lens': ``save_inference_model`` writes ``cfg.json`` and
``sae_weights.safetensors``, and :func:`sae_difficulty.saes.loading.load_sae` reads them
with ``sae_lens.SAE.load_from_disk``. Why a second reader: importing sae-lens brings
TransformerLens, transformers and more, 4-7 s of CPU in every job, while stages that
only read the decoder (seed stability) or encode arrays (pooled codes) need the four
weight tensors and a dozen lines of arithmetic. Here the files are read with
``safetensors`` and ``json``; :meth:`SaeCheckpoint.encode` / :meth:`SaeCheckpoint.decode`
are sae-lens' inference ``encode``/``decode`` for the architectures the project saves
(``standard`` = ReLU, ``topk``, ``jumprelu`` = how sae-lens saves BatchTopK), written
with the same torch operations in the same order, so the codes are the ones sae-lens
computes (``tests/saes/test_checkpoint.py`` trains each architecture with sae-lens,
saves it and compares).

torch is imported only when encoding or decoding: reading the decoder stays numpy-only.
"""

from __future__ import annotations

import json
import os
from collections.abc import Collection
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from sae_difficulty.utils.errors import InputError

if TYPE_CHECKING:
    import torch

#: sae-lens' file names (``sae_lens.constants.SAE_CFG_FILENAME`` / ``SAE_WEIGHTS_FILENAME``).
SAE_CFG_FILENAME = "cfg.json"
SAE_WEIGHTS_FILENAME = "sae_weights.safetensors"

#: sae-lens inference architectures this reader encodes, and the weights each needs.
_REQUIRED_WEIGHTS = {
    "standard": ("W_enc", "b_enc", "W_dec", "b_dec"),
    "topk": ("W_enc", "b_enc", "W_dec", "b_dec"),
    "jumprelu": ("W_enc", "b_enc", "W_dec", "b_dec", "threshold"),
}
#: Normalizations that are the identity at inference in sae-lens (``expected_average_only_in``
#: is folded into the weights when training ends; sae-lens applies nothing at run time).
_IDENTITY_NORMALIZATIONS = ("none", "expected_average_only_in")
#: sae-lens architecture names -> project names (ReLU+L1 is sae-lens' "standard").
PROJECT_ARCHITECTURE = {"standard": "relu", "topk": "topk", "batchtopk": "batchtopk", "jumprelu": "jumprelu"}


class SparseAutoencoder(Protocol):
    """What the project's encoding helpers use of a loaded SAE; sae-lens' ``SAE`` and :class:`SaeCheckpoint` both have it."""

    cfg: Any  # d_in, d_sae, architecture(), metadata.training_architecture
    device: Any

    def encode(self, x: torch.Tensor) -> torch.Tensor: ...

    def decode(self, feature_acts: torch.Tensor) -> torch.Tensor: ...


@dataclass(frozen=True)
class CheckpointMetadata:
    """The part of sae-lens' ``cfg.metadata`` the project reads."""

    training_architecture: str | None = None


@dataclass(frozen=True)
class CheckpointConfig:
    """The fields of sae-lens' inference ``SAEConfig`` that determine encode/decode.

    ``architecture()`` is a method, as on sae-lens' config, so code that reads
    ``sae.cfg.d_in``, ``sae.cfg.d_sae``, ``sae.cfg.architecture()`` or
    ``sae.cfg.metadata.training_architecture`` works with either object.
    """

    inference_architecture: str
    d_in: int
    d_sae: int
    dtype: str
    apply_b_dec_to_input: bool
    k: int | None
    rescale_acts_by_decoder_norm: bool
    metadata: CheckpointMetadata

    def architecture(self) -> str:
        return self.inference_architecture


class SaeCheckpoint:
    """An SAE read from a sae-lens checkpoint: its config, its weights (numpy) and sae-lens' inference maths.

    ``encode``/``decode`` take and return torch tensors like sae-lens' ``SAE`` (the
    project's encoding helpers call them the same way); ``decoder_directions`` needs
    no torch. Always on the CPU (``device``), in inference mode.
    """

    device = "cpu"

    def __init__(self, path: Path, cfg: CheckpointConfig, weights: dict[str, np.ndarray]) -> None:
        self.path = path
        self.cfg = cfg
        self.weights = weights
        self._tensors: dict[str, torch.Tensor] | None = None

    def __repr__(self) -> str:
        return f"SaeCheckpoint({str(self.path)!r}, {self.cfg.inference_architecture}, d_in={self.cfg.d_in}, d_sae={self.cfg.d_sae})"

    @property
    def architecture(self) -> str:
        """The project name of the architecture the SAE was trained as (BatchTopK is saved as JumpReLU)."""
        name = self.cfg.metadata.training_architecture or self.cfg.inference_architecture
        return PROJECT_ARCHITECTURE.get(name, name)

    def decoder_directions(self) -> np.ndarray:
        """The decoder dictionary as float64 rows ``[d_sae, d_in]`` (what PWMCC compares)."""
        return self.weights["W_dec"].astype(np.float64)

    def _weights_as_tensors(self) -> dict[str, torch.Tensor]:
        if self._tensors is None:
            import torch

            dtype = getattr(torch, self.cfg.dtype)
            self._tensors = {name: torch.from_numpy(value).to(dtype) for name, value in self.weights.items()}
        return self._tensors

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """sae-lens' inference ``encode`` of ``x`` ``[..., d_in]``: codes ``[..., d_sae]`` (on the CPU, where the weights are)."""
        import torch

        w = self._weights_as_tensors()
        sae_in = x.to(self.device, w["W_enc"].dtype) - w["b_dec"] * self.cfg.apply_b_dec_to_input
        hidden_pre = sae_in @ w["W_enc"] + w["b_enc"]
        architecture = self.cfg.inference_architecture
        if architecture == "standard":
            return hidden_pre.relu()
        if architecture == "jumprelu":
            return hidden_pre.relu() * (hidden_pre > w["threshold"]).to(hidden_pre.dtype)
        if self.cfg.rescale_acts_by_decoder_norm:
            hidden_pre = hidden_pre * w["W_dec"].norm(dim=-1)
        values, indices = torch.topk(hidden_pre, k=int(self.cfg.k), dim=-1, sorted=False)
        return torch.zeros_like(hidden_pre).scatter_(-1, indices, values.relu())

    def decode(self, codes: torch.Tensor) -> torch.Tensor:
        """sae-lens' inference ``decode``: ``codes @ W_dec + b_dec`` (TopK with decoder-norm rescaling divides first)."""
        w = self._weights_as_tensors()
        codes = codes.to(self.device)
        if self.cfg.inference_architecture == "topk" and self.cfg.rescale_acts_by_decoder_norm:
            codes = codes * (1 / w["W_dec"].norm(dim=-1))
        return codes @ w["W_dec"] + w["b_dec"]


def _config(path: Path, raw: dict[str, Any], weights: dict[str, np.ndarray]) -> CheckpointConfig:
    def fail(key: str, expected: str) -> InputError:
        return InputError(f"SAE checkpoint {path}: {SAE_CFG_FILENAME} '{key}' = {raw.get(key)!r}; expected {expected}")

    architecture = raw.get("architecture")
    if architecture not in _REQUIRED_WEIGHTS:
        raise fail("architecture", f"one of {sorted(_REQUIRED_WEIGHTS)} (sae-lens inference architectures this reader encodes)")
    if raw.get("normalize_activations", "none") not in _IDENTITY_NORMALIZATIONS:
        raise fail("normalize_activations", f"one of {list(_IDENTITY_NORMALIZATIONS)}")
    if raw.get("reshape_activations", "none") != "none":
        raise fail("reshape_activations", "'none'")
    if raw.get("dtype", "float32") not in ("float32", "float64"):
        raise fail("dtype", "'float32' or 'float64'")
    missing = [name for name in _REQUIRED_WEIGHTS[architecture] if name not in weights]
    if missing:
        raise InputError(f"SAE checkpoint {path}: {SAE_WEIGHTS_FILENAME} lacks {missing} for architecture '{architecture}'")
    for key in ("d_in", "d_sae"):
        if not isinstance(raw.get(key), int) or raw[key] < 1:
            raise fail(key, "a positive integer")
    d_in, d_sae = raw["d_in"], raw["d_sae"]
    if weights["W_enc"].shape != (d_in, d_sae) or weights["W_dec"].shape != (d_sae, d_in):
        raise InputError(
            f"SAE checkpoint {path}: W_enc {weights['W_enc'].shape} / W_dec {weights['W_dec'].shape} "
            f"do not match d_in={d_in}, d_sae={d_sae}"
        )
    k = raw.get("k")
    if architecture == "topk" and not (isinstance(k, int) and 1 <= k <= d_sae):
        raise fail("k", f"an integer in [1, {d_sae}]")
    metadata = raw.get("metadata") or {}
    return CheckpointConfig(
        inference_architecture=architecture,
        d_in=d_in,
        d_sae=d_sae,
        dtype=raw.get("dtype", "float32"),
        apply_b_dec_to_input=bool(raw.get("apply_b_dec_to_input", True)),
        k=k if architecture == "topk" else None,
        rescale_acts_by_decoder_norm=bool(raw.get("rescale_acts_by_decoder_norm", False)),
        metadata=CheckpointMetadata(training_architecture=metadata.get("training_architecture")),
    )


def require_checkpoint_files(path: str | os.PathLike) -> Path:
    """``path`` as a Path when it is a directory holding sae-lens's two files, else a one-line InputError."""
    path = Path(path)
    if not path.is_dir():
        raise InputError(f"SAE checkpoint {path} does not exist (expected a directory saved by sae-lens)")
    for filename in (SAE_CFG_FILENAME, SAE_WEIGHTS_FILENAME):
        if not (path / filename).is_file():
            raise InputError(
                f"SAE checkpoint {path}: missing {filename} (sae-lens format: {SAE_CFG_FILENAME} + {SAE_WEIGHTS_FILENAME})"
            )
    return path


def read_checkpoint(
    path: str | os.PathLike,
    *,
    expected_d_in: int | None = None,
    allowed_architectures: Collection[str] | None = None,
) -> SaeCheckpoint:
    """Read a sae-lens checkpoint directory, refusing unusable ones with one line.

    The same refusals as :func:`sae_difficulty.saes.loading.load_sae`: a missing
    directory or file, one that cannot be read, a ``d_in`` other than ``expected_d_in``,
    an architecture (project names: topk/relu/batchtopk) outside ``allowed_architectures``;
    and a config this reader does not encode (run-time normalization, hook_z reshaping).
    """
    from safetensors import SafetensorError
    from safetensors.numpy import load_file

    path = require_checkpoint_files(path)
    try:
        raw = json.loads((path / SAE_CFG_FILENAME).read_text())
        weights = load_file(path / SAE_WEIGHTS_FILENAME)
    except (OSError, ValueError, SafetensorError) as error:
        detail = str(error).strip().splitlines()[0] if str(error).strip() else ""
        raise InputError(f"SAE checkpoint {path}: cannot read it ({type(error).__name__}: {detail[:200]})") from error
    if not isinstance(raw, dict):
        raise InputError(f"SAE checkpoint {path}: {SAE_CFG_FILENAME} holds {type(raw).__name__}; expected a JSON object")
    checkpoint = SaeCheckpoint(path, _config(path, raw, weights), weights)
    if expected_d_in is not None and checkpoint.cfg.d_in != expected_d_in:
        raise InputError(f"SAE {path}: d_in={checkpoint.cfg.d_in} does not match the activation cache width d={expected_d_in}")
    if allowed_architectures is not None and checkpoint.architecture not in set(allowed_architectures):
        raise InputError(
            f"SAE {path}: architecture '{checkpoint.architecture}' is not one this stage was asked for {sorted(allowed_architectures)}"
        )
    return checkpoint
