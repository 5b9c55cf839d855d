"""SAEBench-style sparse probing, SAE latents vs residual dimensions (store stage `eval_sparse_probing`); logic in sae_difficulty.stages.eval_sparse_probing."""

from sae_difficulty.pipeline.runner import run_node
from sae_difficulty.stages import eval_sparse_probing

run_node(snakemake, eval_sparse_probing.build)  # noqa: F821  (snakemake is injected by the script directive)
