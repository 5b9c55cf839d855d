"""SAE quality: explained variance, L0, dead features, spliced loss (store stage `sae_quality`); logic in sae_difficulty.stages.sae_quality."""

from sae_difficulty.pipeline.warm_worker import run_stage

run_stage(snakemake, "sae_quality")  # noqa: F821  (snakemake is injected by the script directive)
