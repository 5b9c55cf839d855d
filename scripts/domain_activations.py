"""Prose-only and code-only LM activations for the domain SAEs (store stage `domain_activations`); logic in sae_difficulty.stages.domain_activations."""

from sae_difficulty.pipeline.runner import run_node
from sae_difficulty.stages import domain_activations

run_node(snakemake, domain_activations.build)  # noqa: F821  (snakemake is injected by the script directive)
