"""Write the task records and the split table (store stage `tasks`); logic in sae_difficulty.stages.tasks."""

from sae_difficulty.pipeline.runner import run_node
from sae_difficulty.stages import tasks

run_node(snakemake, tasks.build)  # noqa: F821  (snakemake is injected by the script directive)
