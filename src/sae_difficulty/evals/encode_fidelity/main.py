"""An SAE loaded from an external format must reproduce its source's own codes.

A conversion that silently drops a detail (most often the decoder-bias shift:
``dictionary_learning`` encodes ``x - bias``) yields an SAE that loads, reconstructs
plausibly and has *different features*. This check encodes the same activation rows
twice, once with the loaded sae-lens SAE and once with the source format's own encoding
recomputed from the raw tensors in numpy (:mod:`.formats`), and refuses the SAE when
the codes disagree.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import torch
from sae_lens import SAE

from sae_difficulty.evals.base import EvalResult
from sae_difficulty.evals.encode_fidelity.config import EncodeFidelityConfig
from sae_difficulty.evals.encode_fidelity.formats import source_codes
from sae_difficulty.evals.encode_fidelity.output import EncodeFidelityOutput
from sae_difficulty.utils.errors import InputError

_LIKELY_CAUSE = "decoder-bias shift (b_dec) not applied to the input?"


@dataclass(frozen=True, eq=False)
class EncodeFidelityResult(EvalResult):
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

    OUTPUT = EncodeFidelityOutput

    def document(self) -> dict[str, Any]:
        """The JSON summary (see :class:`EncodeFidelityOutput`)."""
        return (
            {
                "path": self.path,
                "format": self.format,
                "config": self.config.to_dict(),
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
