"""Selective prediction, calibration and the cascade (store stage `selective`); logic in sae_difficulty.stages.selective."""

from sae_difficulty.pipeline.runner import run_node
from sae_difficulty.stages import selective

run_node(snakemake, selective.build)  # noqa: F821  (snakemake is injected by the script directive)
