"""An externally trained SAE: encode fidelity, then reconstruction on the domains (store stage `eval_external`); logic in sae_difficulty.stages.eval_external."""

from sae_difficulty.pipeline.warm_worker import run_stage

run_stage(snakemake, "eval_external")  # noqa: F821  (snakemake is injected by the script directive)
