"""Cross-domain generalization of prose- and code-trained SAEs (store stage `eval_cross_domain`); logic in sae_difficulty.stages.eval_cross_domain."""

from sae_difficulty.pipeline.warm_worker import run_stage

run_stage(snakemake, "eval_cross_domain")  # noqa: F821  (snakemake is injected by the script directive)
