"""Settings of the ground-truth evaluation (``sae_evals.ground_truth``)."""

from __future__ import annotations

from dataclasses import dataclass

from sae_difficulty.evals.base import EvalConfig, integer, number


@dataclass(frozen=True)
class GroundTruthConfig(EvalConfig):
    """One SAE against the true dictionary of the synthetic model its activations came from.

    ``n_samples`` fresh samples (``batch_size`` at a time) drawn from the synthetic model
    on a stream no training row came from; ``dense_threshold``: a latent firing on more
    than this share of samples is dense; ``match_threshold``: the |cosine| at which a
    decoder row counts as a true feature; ``n_random``: random dictionaries of the SAE's
    shape for the MCC baseline; ``n_boot``: bootstrap resamples of the matched pairs for
    the MCC's CI; ``seed``: sampling, baseline and bootstrap.
    """

    NAME = "ground_truth"

    n_samples: int = integer(65536, minimum=1, doc="fresh synthetic samples the SAE is evaluated on")
    batch_size: int = integer(8192, minimum=1, doc="samples per batch")
    dense_threshold: float = number(0.5, minimum=0, maximum=1, exclusive_minimum=True, exclusive_maximum=True,
                                    doc="firing share above which a latent is dense")  # fmt: skip
    match_threshold: float = number(0.9, minimum=0, maximum=1, exclusive_minimum=True,
                                    doc="|cosine| at which a decoder row recovers a true feature")  # fmt: skip
    n_random: int = integer(5, minimum=1, doc="random dictionaries for the MCC baseline")
    n_boot: int = integer(1000, minimum=1, doc="bootstrap resamples of the matched pairs")
    seed: int = integer(0, minimum=0)
