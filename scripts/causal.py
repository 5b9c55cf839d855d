"""Causal reconstruction patching of the top probe features (store stage `causal`); logic in sae_difficulty.stages.causal."""

from sae_difficulty.pipeline.warm_worker import run_stage

run_stage(snakemake, "causal")  # noqa: F821  (snakemake is injected by the script directive)
