"""Faithfulness of attribution-ranked SAE feature circuits (store stage `eval_circuit`); logic in sae_difficulty.stages.eval_circuit."""

from sae_difficulty.pipeline.warm_worker import run_stage

run_stage(snakemake, "eval_circuit")  # noqa: F821  (snakemake is injected by the script directive)
