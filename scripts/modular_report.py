"""Copy the modular stability node's report, table and figures to results/modular/."""

from sae_difficulty.pipeline.runner import run_view
from sae_difficulty.reports import modular_report

run_view(snakemake, modular_report.publish)  # noqa: F821  (snakemake is injected by the script directive)
