"""Steering with an SAE decoder direction vs diff-of-means (store stage `eval_steering`); logic in sae_difficulty.stages.eval_steering."""

from sae_difficulty.pipeline.runner import run_node
from sae_difficulty.stages import eval_steering

run_node(snakemake, eval_steering.build)  # noqa: F821  (snakemake is injected by the script directive)
