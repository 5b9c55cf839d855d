"""Settings of the cross-domain evaluation (``sae_evals.cross_domain``)."""

from __future__ import annotations

from dataclasses import dataclass

from sae_difficulty.evals.base import EvalConfig, integer


@dataclass(frozen=True)
class CrossDomainConfig(EvalConfig):
    """``n_top_features`` / ``n_top_contexts`` / ``context_tokens``: size of the markdown page;
    ``batch_size``: rows encoded at once; ``n_boot`` (0 = no CI), ``seed`` and
    ``bootstrap_block_rows``: the block bootstrap of the generalization gap.
    """

    NAME = "cross_domain"

    n_top_features: int = integer(8, minimum=1, doc="most selective features on the top-contexts page")
    n_top_contexts: int = integer(5, minimum=1, doc="top-activating contexts per feature")
    context_tokens: int = integer(12, minimum=1, doc="tokens shown per context")
    batch_size: int = integer(2048, minimum=1, doc="rows encoded at once")
    n_boot: int = integer(1000, minimum=0, doc="bootstrap resamples of the gap (0: no CI)")
    seed: int = integer(0, minimum=0)
    bootstrap_block_rows: int = integer(128, minimum=1, doc="rows per bootstrap block")
