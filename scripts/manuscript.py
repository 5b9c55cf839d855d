"""Write paper/generated/ (the manuscript's sections); logic in sae_difficulty.stages.manuscript."""

from sae_difficulty.pipeline.runner import run_view
from sae_difficulty.stages.manuscript import write_view

run_view(snakemake, write_view)  # noqa: F821  (snakemake is injected by the script directive)
