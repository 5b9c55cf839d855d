"""Store stage `synthetic_model`; logic in sae_difficulty.stages.synthetic_model."""

from sae_difficulty.pipeline.warm_worker import run_stage

run_stage(snakemake, "synthetic_model")  # noqa: F821  (snakemake is injected by the script directive)
