"""Copy the synthesis node's human-facing files to results/ and paper/generated/."""

from sae_difficulty.pipeline.runner import run_view
from sae_difficulty.stages import synthesis

run_view(snakemake, synthesis.publish)  # noqa: F821  (snakemake is injected by the script directive)
