"""Pooled and token-level activations of the tasks (zarr) (store stage `extract`); logic in sae_difficulty.stages.extract."""

from sae_difficulty.pipeline.warm_worker import run_stage

run_stage(snakemake, "extract")  # noqa: F821  (snakemake is injected by the script directive)
