"""The cross-modal synthesis table (store stage `synthesis`); logic in sae_difficulty.stages.synthesis."""

from sae_difficulty.pipeline.runner import run_node
from sae_difficulty.stages import synthesis

run_node(snakemake, synthesis.build)  # noqa: F821  (snakemake is injected by the script directive)
