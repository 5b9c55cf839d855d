"""SAE vs skip-transcoder on one MLP layer (store stage `eval_transcoder`); logic in sae_difficulty.stages.eval_transcoder."""

from sae_difficulty.pipeline.warm_worker import run_stage

run_stage(snakemake, "eval_transcoder")  # noqa: F821  (snakemake is injected by the script directive)
