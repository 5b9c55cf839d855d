"""Store stage `modular_stability`; logic in sae_difficulty.stages.modular_stability."""

from sae_difficulty.pipeline.runner import run_node
from sae_difficulty.stages import modular_stability

run_node(snakemake, modular_stability.build)  # noqa: F821  (snakemake is injected by the script directive)
