"""The cross-modal synthesis table (store stage `synthesis`); logic in sae_difficulty.stages.synthesis."""

from sae_difficulty.pipeline.warm_worker import run_stage

run_stage(snakemake, "synthesis")  # noqa: F821  (snakemake is injected by the script directive)
