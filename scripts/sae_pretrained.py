"""Resolve a published SAE with sae-lens' registry (store stage `sae_pretrained`); logic in sae_difficulty.stages.sae_pretrained."""

from sae_difficulty.pipeline.runner import run_node
from sae_difficulty.stages import sae_pretrained

run_node(snakemake, sae_pretrained.build)  # noqa: F821  (snakemake is injected by the script directive)
