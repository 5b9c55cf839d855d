"""SAE vs skip-transcoder on one MLP layer (store stage `eval_transcoder`); logic in sae_difficulty.stages.eval_transcoder."""

from sae_difficulty.pipeline.runner import run_node
from sae_difficulty.stages import eval_transcoder

run_node(snakemake, eval_transcoder.build)  # noqa: F821  (snakemake is injected by the script directive)
