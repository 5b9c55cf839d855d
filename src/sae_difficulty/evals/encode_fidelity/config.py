"""Settings of the encode-fidelity check (``sae_evals.encode_fidelity``)."""

from __future__ import annotations

from dataclasses import dataclass

from sae_difficulty.evals.base import EvalConfig, integer, number


@dataclass(frozen=True)
class EncodeFidelityConfig(EvalConfig):
    """How many rows to encode and how close the two encodings must be.

    A row matches when every code agrees within ``atol + rtol * |source code|``; the
    SAE passes when at least ``min_match_fraction`` of the rows match.
    """

    NAME = "encode_fidelity"

    n_rows: int = integer(1024, minimum=1, doc="rows encoded twice")
    atol: float = number(1e-4, minimum=0, doc="absolute tolerance on codes")
    rtol: float = number(1e-3, minimum=0, doc="relative tolerance on codes")
    min_match_fraction: float = number(1.0, minimum=0, maximum=1, exclusive_minimum=True, doc="rows that must match")
