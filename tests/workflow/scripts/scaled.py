import toy

from sae_difficulty.pipeline.runner import run_node

run_node(snakemake, toy.build_scaled)  # noqa: F821
