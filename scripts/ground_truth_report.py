"""Copy the ground-truth answer node's report, table and figures to results/."""

from sae_difficulty.pipeline.runner import run_view
from sae_difficulty.reports.views import publish_ground_truth

run_view(snakemake, publish_ground_truth)  # noqa: F821  (snakemake is injected by the script directive)
