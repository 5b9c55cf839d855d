"""Write results/sae_evals.md from the evaluation nodes; logic in sae_difficulty.reports.views."""

from sae_difficulty.pipeline.runner import run_view
from sae_difficulty.reports.views import write_evals_report

run_view(snakemake, write_evals_report)  # noqa: F821  (snakemake is injected by the script directive)
