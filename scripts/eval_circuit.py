"""Faithfulness of attribution-ranked SAE feature circuits (store stage `eval_circuit`); logic in sae_difficulty.stages.eval_circuit."""

from sae_difficulty.pipeline.runner import run_node
from sae_difficulty.stages import eval_circuit

run_node(snakemake, eval_circuit.build)  # noqa: F821  (snakemake is injected by the script directive)
