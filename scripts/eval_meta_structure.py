"""A meta-SAE on the primary SAE's decoder rows vs random rows (store stage `eval_meta_structure`); logic in sae_difficulty.stages.eval_meta_structure."""

from sae_difficulty.pipeline.warm_worker import run_stage

run_stage(snakemake, "eval_meta_structure")  # noqa: F821  (snakemake is injected by the script directive)
