"""Settings of the SAE-vs-skip-transcoder comparison (``sae_evals.transcoder``; the stage adds ``heldout_tokens``)."""

from __future__ import annotations

from dataclasses import dataclass

from sae_difficulty.evals.base import EvalConfig, integer, number


@dataclass(frozen=True)
class TranscoderComparisonConfig(EvalConfig):
    """One SAE-vs-skip-transcoder comparison at one MLP layer.

    ``layer``: the block whose MLP is studied. ``expansion``: d_sae / d_model for both
    models. ``l1_coefficient``: weight of ``sum_i f_i ||W_dec_i||`` on activations scaled
    to mean squared norm d. Default 1.0, from a sweep on the demo LM (d_model 48, both
    layers, default budget): 1e-3 leaves codes dense (L0 ~ 85-95 % of d_sae, EV ~ 0.96-0.98),
    1.0 gives the SAE EV ~ 0.85-0.89 at L0 ~ 30-50 % of d_sae with no dead features,
    2.0 starts killing SAE features (up to 17 % dead) and 5.0 collapses the SAE. ``lr``: Adam
    learning rate. ``training_tokens``/``batch_size``: token budget and rows per step
    (same for both). ``seed``: initialization, batch order and bootstrap.
    ``n_boot``: bootstrap replicates. ``splice_sequences``/``context_length``: how many
    held-out windows, and how many positions of each, the spliced loss uses.
    """

    NAME = "transcoder"

    layer: int = integer(minimum=0, doc="block whose MLP is studied")
    expansion: int = integer(4, minimum=1, doc="d_sae / d_model of both models")
    l1_coefficient: float = number(1.0, minimum=0, doc="L1 penalty (same for both)")
    lr: float = number(1e-3, minimum=0, exclusive_minimum=True, doc="Adam learning rate")
    training_tokens: int = integer(65536, minimum=1, doc="training rows (same for both)")
    batch_size: int = integer(256, minimum=1, doc="rows per step")
    seed: int = integer(0, minimum=0)
    n_boot: int = integer(1000, minimum=1, doc="bootstrap replicates")
    splice_sequences: int = integer(32, minimum=1, doc="held-out windows of the spliced loss")
    context_length: int = integer(64, minimum=2, doc="positions per spliced window")

    def check(self) -> None:
        if self.training_tokens < self.batch_size:
            raise self.invalid("training_tokens", f"an integer >= batch_size ({self.batch_size})", self.training_tokens)

    @property
    def training_steps(self) -> int:
        return int(self.training_tokens) // int(self.batch_size)
