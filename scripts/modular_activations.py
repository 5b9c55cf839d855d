"""Store stage `modular_activations`; logic in sae_difficulty.stages.modular_activations."""

from sae_difficulty.pipeline.runner import run_node
from sae_difficulty.stages import modular_activations

run_node(snakemake, modular_activations.build)  # noqa: F821  (snakemake is injected by the script directive)
