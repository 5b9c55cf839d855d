"""The five-rung probe ladder (store stage `probe`); logic in sae_difficulty.stages.probe."""

from sae_difficulty.pipeline.warm_worker import run_stage

run_stage(snakemake, "probe")  # noqa: F821  (snakemake is injected by the script directive)
