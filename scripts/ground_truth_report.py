"""Copy the ground-truth answer node's report, table and figures to results/."""

from sae_difficulty.pipeline.runner import run_view
from sae_difficulty.reports import ground_truth_report

run_view(snakemake, ground_truth_report.publish)  # noqa: F821  (snakemake is injected by the script directive)
