"""Write the task records and the split table (store stage `tasks`); logic in sae_difficulty.stages.tasks."""

from sae_difficulty.pipeline.warm_worker import run_stage

run_stage(snakemake, "tasks")  # noqa: F821  (snakemake is injected by the script directive)
