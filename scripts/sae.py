"""Train one SAE with sae-lens (store stage `sae`); logic in sae_difficulty.stages.sae."""

from sae_difficulty.pipeline.runner import run_node
from sae_difficulty.stages import sae

run_node(snakemake, sae.build)  # noqa: F821  (snakemake is injected by the script directive)
