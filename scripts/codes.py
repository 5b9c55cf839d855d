"""SAE codes of the tasks, pooled like the raw activations (store stage `codes`); logic in sae_difficulty.stages.codes."""

from sae_difficulty.pipeline.warm_worker import run_stage

run_stage(snakemake, "codes")  # noqa: F821  (snakemake is injected by the script directive)
