"""PWMCC across seeds against random dictionaries (store stage `sae_stability`); logic in sae_difficulty.stages.sae_stability."""

from sae_difficulty.pipeline.warm_worker import run_stage

run_stage(snakemake, "sae_stability")  # noqa: F821  (snakemake is injected by the script directive)
