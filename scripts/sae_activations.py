"""Token-level activations for SAE training (zarr) (store stage `sae_activations`); logic in sae_difficulty.stages.sae_activations."""

from sae_difficulty.pipeline.runner import run_node
from sae_difficulty.stages import sae_activations

run_node(snakemake, sae_activations.build)  # noqa: F821  (snakemake is injected by the script directive)
