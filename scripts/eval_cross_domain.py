"""Cross-domain generalization of prose- and code-trained SAEs (store stage `eval_cross_domain`); logic in sae_difficulty.stages.eval_cross_domain."""

from sae_difficulty.pipeline.runner import run_node
from sae_difficulty.stages import eval_cross_domain

run_node(snakemake, eval_cross_domain.build)  # noqa: F821  (snakemake is injected by the script directive)
