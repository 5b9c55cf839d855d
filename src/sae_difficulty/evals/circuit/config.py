"""Settings of feature-circuit faithfulness (``sae_evals.circuit``; the stage adds ``n_examples``, ``min_probability``)."""

from __future__ import annotations

from dataclasses import dataclass

from sae_difficulty.evals.base import EvalConfig, flag, integer, integers


@dataclass(frozen=True)
class CircuitConfig(EvalConfig):
    """Which layers hold the circuit's nodes, which circuit sizes K to test, and the statistics.

    ``layers``: residual-stream layers (``blocks.{L}.hook_resid_post``) with an SAE each;
    ``ks``: circuit sizes; ``n_random``: random K-sets per K; ``n_boot``: bootstrap
    resamples of examples for the gap CI; ``keep_error_term``: keep the SAE error term
    intact (True, Marks et al.) or replace the residual by the SAE reconstruction.
    """

    NAME = "circuit"

    layers: tuple[int, ...] = integers(minimum=0, sort=True, doc="residual layers with an SAE each")
    ks: tuple[int, ...] = integers((5, 10, 20, 50), minimum=1, sort=True, doc="circuit sizes")
    n_random: int = integer(10, minimum=1, doc="random K-sets per K")
    n_boot: int = integer(1000, minimum=1, doc="bootstrap resamples of the examples")
    seed: int = integer(0, minimum=0)
    batch_size: int = integer(16, minimum=1, doc="examples per forward pass")
    keep_error_term: bool = flag(True, doc="keep the SAE error term intact")
