import toy
from sae_difficulty.scripting import run_node

run_node(snakemake, toy.build_summary)  # noqa: F821
