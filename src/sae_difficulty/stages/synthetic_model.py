"""Stage `synthetic_model`: an sae-lens SyntheticModel (true dictionary, firing, hierarchy, correlation), saved.

``synthetic_model/`` is sae-lens' own save (``synthetic_model_config.json``,
``synthetic_model.safetensors`` with the true ``feature_vectors``, ``hierarchy.json``
when there is one); ``SyntheticModel.load_from_disk`` reloads it. ``synthetic_model.json``
summarizes it: sizes, the expected number of active features per sample before the
hierarchy gates children, and the superposition (mean max |cosine| between true features).
"""

from __future__ import annotations

from sae_lens.synthetic import compute_superposition_stats

from sae_difficulty.pipeline.runner import NodeContext
from sae_difficulty.saes import synthetic
from sae_difficulty.utils.io import write_json

SUMMARY = "synthetic_model.json"


def build(ctx: NodeContext) -> None:
    model = synthetic.build_model(ctx.params)
    synthetic.save_model(model, ctx.out)
    superposition = compute_superposition_stats(model.feature_dict)
    probabilities = synthetic.firing_probabilities(model)
    write_json(ctx.out / SUMMARY, {
        "num_features": model.cfg.num_features, "hidden_dim": model.cfg.hidden_dim,
        "expected_l0_before_hierarchy": float(probabilities.sum()),
        "firing_probability_max": float(probabilities.max()), "firing_probability_min": float(probabilities.min()),
        "hierarchy_features": 0 if model.hierarchy is None else len(model.hierarchy.feature_indices_used),
        "mean_max_abs_cosine": float(superposition.mean_max_abs_cos_sim),
        "mean_abs_cosine": float(superposition.mean_abs_cos_sim),
        "config": model.cfg.to_dict(),
    })  # fmt: skip
