"""Store stage `eval_ground_truth`; logic in sae_difficulty.stages.eval_ground_truth."""

from sae_difficulty.pipeline.runner import run_node
from sae_difficulty.stages import eval_ground_truth

run_node(snakemake, eval_ground_truth.build)  # noqa: F821  (snakemake is injected by the script directive)
