"""Pooled and token-level activations of the tasks (zarr) (store stage `extract`); logic in sae_difficulty.stages.extract."""

from sae_difficulty.pipeline.runner import run_node
from sae_difficulty.stages import extract

run_node(snakemake, extract.build)  # noqa: F821  (snakemake is injected by the script directive)
