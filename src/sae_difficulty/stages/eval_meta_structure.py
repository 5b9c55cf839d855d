"""Stage `eval_meta_structure`: a small meta-SAE on the decoder rows of the study's primary SAE, vs random rows.

Only the decoder weights are read, so no encode-fidelity check: it concerns the codes,
which this evaluation never computes.
"""

from __future__ import annotations

from sae_difficulty.evals import meta_structure
from sae_difficulty.pipeline.artifacts import SAE_DIR
from sae_difficulty.pipeline.runner import NodeContext
from sae_difficulty.saes.encoding import decoder_directions
from sae_difficulty.saes.loading import load_sae
from sae_difficulty.stages.evals_common import write_evaluation


def build(ctx: NodeContext) -> None:
    params = ctx.params
    config = meta_structure.MetaStructureConfig.from_dict({key: value for key, value in params.items() if key != "layer"})
    sae = load_sae(ctx.parent("sae") / SAE_DIR)
    result = meta_structure.evaluate_meta_structure(decoder_directions(sae), config)
    write_evaluation(ctx.out, "meta_structure", result, {"sae_d_in": int(sae.cfg.d_in), "sae_d_sae": int(sae.cfg.d_sae)})
