"""Copy the modular stability node's report, table and figures to results/modular/."""

from sae_difficulty import modular_report
from sae_difficulty.scripting import run_view

run_view(snakemake, modular_report.publish)  # noqa: F821  (snakemake is injected by the script directive)
