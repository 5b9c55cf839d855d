"""Prose-only and code-only LM activations for the domain SAEs (store stage `domain_activations`); logic in sae_difficulty.stages.domain_activations."""

from sae_difficulty.pipeline.warm_worker import run_stage

run_stage(snakemake, "domain_activations")  # noqa: F821  (snakemake is injected by the script directive)
