"""Resolve a published SAE with sae-lens' registry (store stage `sae_pretrained`); logic in sae_difficulty.stages.sae_pretrained."""

from sae_difficulty.pipeline.warm_worker import run_stage

run_stage(snakemake, "sae_pretrained")  # noqa: F821  (snakemake is injected by the script directive)
