"""Copy the modular stability node's report, table and figures to results/modular/."""

from sae_difficulty.pipeline.runner import run_view
from sae_difficulty.reports.views import publish_modular

run_view(snakemake, publish_modular)  # noqa: F821  (snakemake is injected by the script directive)
