"""Store stage `modular_stability`; logic in sae_difficulty.stages.modular_stability."""

from sae_difficulty.pipeline.warm_worker import run_stage

run_stage(snakemake, "modular_stability")  # noqa: F821  (snakemake is injected by the script directive)
