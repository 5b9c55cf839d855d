"""Write the run ledger (results/ledger.md and .parquet); logic in sae_difficulty.reports.ledger."""

from sae_difficulty.pipeline.runner import run_view
from sae_difficulty.reports.ledger import write_ledger_view

run_view(snakemake, write_ledger_view)  # noqa: F821  (snakemake is injected by the script directive)
