"""An externally trained SAE: encode fidelity, then reconstruction on the domains (store stage `eval_external`); logic in sae_difficulty.stages.eval_external."""

from sae_difficulty.pipeline.runner import run_node
from sae_difficulty.stages import eval_external

run_node(snakemake, eval_external.build)  # noqa: F821  (snakemake is injected by the script directive)
