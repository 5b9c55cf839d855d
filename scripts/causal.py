"""Causal reconstruction patching of the top probe features (store stage `causal`); logic in sae_difficulty.stages.causal."""

from sae_difficulty.pipeline.runner import run_node
from sae_difficulty.stages import causal

run_node(snakemake, causal.build)  # noqa: F821  (snakemake is injected by the script directive)
