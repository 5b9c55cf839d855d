"""Store stage `eval_ground_truth`; logic in sae_difficulty.stages.eval_ground_truth."""

from sae_difficulty.pipeline.warm_worker import run_stage

run_stage(snakemake, "eval_ground_truth")  # noqa: F821  (snakemake is injected by the script directive)
