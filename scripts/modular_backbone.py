"""Store stage `modular_backbone`; logic in sae_difficulty.stages.modular_backbone."""

from sae_difficulty.pipeline.warm_worker import run_stage

run_stage(snakemake, "modular_backbone")  # noqa: F821  (snakemake is injected by the script directive)
