"""Copy the synthesis node's human-facing files (tables, figures) to results/."""

from sae_difficulty.pipeline.runner import run_view
from sae_difficulty.reports.views import publish_synthesis

run_view(snakemake, publish_synthesis)  # noqa: F821  (snakemake is injected by the script directive)
