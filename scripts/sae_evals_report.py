"""Write results/sae_evals.md from the evaluation nodes; logic in sae_difficulty.reports.evals_report."""

from sae_difficulty.pipeline.runner import run_view
from sae_difficulty.reports.evals_report import write_report_view

run_view(snakemake, write_report_view)  # noqa: F821  (snakemake is injected by the script directive)
