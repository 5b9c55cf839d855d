"""Train the demo backbone (or record the hub reference) (store stage `backbone`); logic in sae_difficulty.stages.backbone."""

from sae_difficulty.pipeline.warm_worker import run_stage

run_stage(snakemake, "backbone")  # noqa: F821  (snakemake is injected by the script directive)
