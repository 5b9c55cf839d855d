"""SAEBench-style sparse probing, SAE latents vs residual dimensions (store stage `eval_sparse_probing`); logic in sae_difficulty.stages.eval_sparse_probing."""

from sae_difficulty.pipeline.warm_worker import run_stage

run_stage(snakemake, "eval_sparse_probing")  # noqa: F821  (snakemake is injected by the script directive)
