"""Selective prediction, calibration and the cascade (store stage `selective`); logic in sae_difficulty.stages.selective."""

from sae_difficulty.pipeline.warm_worker import run_stage

run_stage(snakemake, "selective")  # noqa: F821  (snakemake is injected by the script directive)
