"""Stage `eval_ground_truth`: one synthetic SAE scored against the true dictionary (evals/ground_truth)."""

from __future__ import annotations

from sae_difficulty.evals.ground_truth import (
    PUBLISHED_CLAIM,
    GroundTruthConfig,
    evaluate_ground_truth,
)
from sae_difficulty.pipeline.artifacts import SAE_DIR
from sae_difficulty.pipeline.runner import NodeContext
from sae_difficulty.saes import synthetic
from sae_difficulty.saes.loading import load_sae
from sae_difficulty.stages.evals_common import write_evaluation
from sae_difficulty.utils.io import read_json

#: Node params that describe the SAE (the rest are the evaluation's config).
DESCRIPTIVE = ("cell", "architecture", "expansion", "k", "l1_coefficient", "published")


def build(ctx: NodeContext) -> None:
    params = ctx.params
    config = GroundTruthConfig.from_dict({k: v for k, v in params.items() if k not in DESCRIPTIVE})
    model = synthetic.load_model(ctx.parent("model"))
    sae = load_sae(ctx.parent("sae") / SAE_DIR, expected_d_in=model.cfg.hidden_dim)
    training = read_json(ctx.parent("sae") / "training.json")
    match = bool(params["published"]["settings_match"])
    published = {"settings_match": match, "claim": PUBLISHED_CLAIM if match else "", "reason": params["published"]["reason"]}
    result = evaluate_ground_truth(sae, model, config, training_tokens=int(training["n_tokens"]), published=published)
    # The claim covers this SAE only where the SynthSAEBench settings match; elsewhere there is no claim.
    write_evaluation(ctx.out, "ground_truth", result, claim_sign=1 if match else 0)
