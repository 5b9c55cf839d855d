"""Store stage `synthetic_model`; logic in sae_difficulty.stages.synthetic_model."""

from sae_difficulty.pipeline.runner import run_node
from sae_difficulty.stages import synthetic_model

run_node(snakemake, synthetic_model.build)  # noqa: F821  (snakemake is injected by the script directive)
