"""Token-level activations for SAE training (zarr) (store stage `sae_activations`); logic in sae_difficulty.stages.sae_activations."""

from sae_difficulty.pipeline.warm_worker import run_stage

run_stage(snakemake, "sae_activations")  # noqa: F821  (snakemake is injected by the script directive)
