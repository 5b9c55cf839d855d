"""Store stage `modular_backbone`; logic in sae_difficulty.stages.modular_backbone."""

from sae_difficulty.pipeline.runner import run_node
from sae_difficulty.stages import modular_backbone

run_node(snakemake, modular_backbone.build)  # noqa: F821  (snakemake is injected by the script directive)
