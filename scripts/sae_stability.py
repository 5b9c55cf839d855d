"""PWMCC across seeds against random dictionaries (store stage `sae_stability`); logic in sae_difficulty.stages.sae_stability."""

from sae_difficulty.pipeline.runner import run_node
from sae_difficulty.stages import sae_stability

run_node(snakemake, sae_stability.build)  # noqa: F821  (snakemake is injected by the script directive)
