"""Run a backbone on the tasks: errors, metrics, cheap features (store stage `evaluate`); logic in sae_difficulty.stages.evaluate."""

from sae_difficulty.pipeline.warm_worker import run_stage

run_stage(snakemake, "evaluate")  # noqa: F821  (snakemake is injected by the script directive)
