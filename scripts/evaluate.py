"""Run a backbone on the tasks: errors, metrics, cheap features (store stage `evaluate`); logic in sae_difficulty.stages.evaluate."""

from sae_difficulty.pipeline.runner import run_node
from sae_difficulty.stages import evaluate

run_node(snakemake, evaluate.build)  # noqa: F821  (snakemake is injected by the script directive)
