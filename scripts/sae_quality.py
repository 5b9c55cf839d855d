"""SAE quality: explained variance, L0, dead features, spliced loss (store stage `sae_quality`); logic in sae_difficulty.stages.sae_quality."""

from sae_difficulty.pipeline.runner import run_node
from sae_difficulty.stages import sae_quality

run_node(snakemake, sae_quality.build)  # noqa: F821  (snakemake is injected by the script directive)
