"""Settings of the meta-structure evaluation (``sae_evals.meta_structure``)."""

from __future__ import annotations

from dataclasses import dataclass

from sae_difficulty.evals.base import EvalConfig, integer, number


@dataclass(frozen=True)
class MetaStructureConfig(EvalConfig):
    """A small TopK meta-SAE trained on an SAE's unit decoder rows (and, as the baseline, on
    random unit rows of the same shape), with the project's SAE trainer.

    ``expansion``: meta-latents per decoder dimension (width = expansion x d_in); ``k``:
    active meta-latents per decoder row; ``lr``, ``epochs`` (passes over the rows) and
    ``batch_size``: the training budget; ``n_boot``: bootstrap resamples of the rows for
    the CIs; ``seed``: initialization, batch order, random baseline and bootstrap.
    """

    NAME = "meta_structure"

    expansion: int = integer(1, minimum=1, doc="meta-latents per decoder dimension")
    k: int = integer(4, minimum=1, doc="active meta-latents per decoder row")
    lr: float = number(3e-3, minimum=0, exclusive_minimum=True, doc="Adam learning rate")
    epochs: int = integer(100, minimum=1, doc="passes over the decoder rows")
    batch_size: int = integer(64, minimum=1, doc="decoder rows per step")
    n_boot: int = integer(1000, minimum=1, doc="bootstrap resamples of the rows")
    seed: int = integer(0, minimum=0)
