"""Store stage `synthetic_activations`; logic in sae_difficulty.stages.synthetic_activations."""

from sae_difficulty.pipeline.runner import run_node
from sae_difficulty.stages import synthetic_activations

run_node(snakemake, synthetic_activations.build)  # noqa: F821  (snakemake is injected by the script directive)
