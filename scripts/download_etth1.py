"""Download a fresh copy of ETTh1 and check its sha256 (for users with network access)."""

from sae_difficulty.pipeline.runner import run_view
from sae_difficulty.stages import tasks

run_view(snakemake, tasks.download_checked)  # noqa: F821  (snakemake is injected by the script directive)
