"""The five-rung probe ladder (store stage `probe`); logic in sae_difficulty.stages.probe."""

from sae_difficulty.pipeline.runner import run_node
from sae_difficulty.stages import probe

run_node(snakemake, probe.build)  # noqa: F821  (snakemake is injected by the script directive)
