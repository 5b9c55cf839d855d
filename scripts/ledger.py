"""Write the run ledger (results/ledger.md and .parquet); logic in sae_difficulty.ledger."""

from sae_difficulty.ledger import write_ledger_view
from sae_difficulty.scripting import run_view

run_view(snakemake, write_ledger_view)  # noqa: F821  (snakemake is injected by the script directive)
