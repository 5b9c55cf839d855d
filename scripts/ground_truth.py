"""Store stage `ground_truth`; logic in sae_difficulty.stages.ground_truth."""

from sae_difficulty.pipeline.warm_worker import run_stage

run_stage(snakemake, "ground_truth")  # noqa: F821  (snakemake is injected by the script directive)
