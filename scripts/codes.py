"""SAE codes of the tasks, pooled like the raw activations (store stage `codes`); logic in sae_difficulty.stages.codes."""

from sae_difficulty.pipeline.runner import run_node
from sae_difficulty.stages import codes

run_node(snakemake, codes.build)  # noqa: F821  (snakemake is injected by the script directive)
