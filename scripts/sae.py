"""Train one SAE with sae-lens (store stage `sae`); logic in sae_difficulty.stages.sae."""

from sae_difficulty.pipeline.warm_worker import run_stage

run_stage(snakemake, "sae")  # noqa: F821  (snakemake is injected by the script directive)
