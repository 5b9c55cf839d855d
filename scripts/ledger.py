"""Write the run ledger (results/ledger.md and .parquet); logic in sae_difficulty.reports.views."""

from sae_difficulty.pipeline.runner import run_view
from sae_difficulty.reports.views import write_ledger

run_view(snakemake, write_ledger)  # noqa: F821  (snakemake is injected by the script directive)
