"""A meta-SAE on the primary SAE's decoder rows vs random rows (store stage `eval_meta_structure`); logic in sae_difficulty.stages.eval_meta_structure."""

from sae_difficulty.pipeline.runner import run_node
from sae_difficulty.stages import eval_meta_structure

run_node(snakemake, eval_meta_structure.build)  # noqa: F821  (snakemake is injected by the script directive)
