"""Store stage `modular_activations`; logic in sae_difficulty.stages.modular_activations."""

from sae_difficulty.pipeline.warm_worker import run_stage

run_stage(snakemake, "modular_activations")  # noqa: F821  (snakemake is injected by the script directive)
