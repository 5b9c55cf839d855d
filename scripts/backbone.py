"""Train the demo backbone (or record the hub reference) (store stage `backbone`); logic in sae_difficulty.stages.backbone."""

from sae_difficulty.pipeline.runner import run_node
from sae_difficulty.stages import backbone

run_node(snakemake, backbone.build)  # noqa: F821  (snakemake is injected by the script directive)
