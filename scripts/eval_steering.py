"""Steering with an SAE decoder direction vs diff-of-means (store stage `eval_steering`); logic in sae_difficulty.stages.eval_steering."""

from sae_difficulty.pipeline.warm_worker import run_stage

run_stage(snakemake, "eval_steering")  # noqa: F821  (snakemake is injected by the script directive)
