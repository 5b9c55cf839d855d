"""Stage `eval_circuit`: top-K attributed SAE features vs random K-feature sets, at the LM's layers."""

from __future__ import annotations

from sae_difficulty.evals import circuit
from sae_difficulty.modalities import load_backbone
from sae_difficulty.modalities.llm.patching import residuals, text_windows
from sae_difficulty.pipeline.artifacts import SAE_DIR
from sae_difficulty.pipeline.runner import NodeContext
from sae_difficulty.stages.evals_common import load_checked_sae, write_evaluation

CANDIDATE_WINDOWS = 4


def build(ctx: NodeContext) -> None:
    params = ctx.params
    layers = tuple(params["layers"])
    _, backbone = load_backbone(ctx.parent("backbone"))
    windows = text_windows(backbone, "heldout", params["context_length"], params["seed"])
    examples = circuit.select_confident_examples(
        backbone, windows[: CANDIDATE_WINDOWS * params["n_examples"]], params["min_probability"], params["n_examples"]
    )
    saes, checks = {}, {}
    for layer in layers:
        sample = residuals(backbone, f"blocks.{layer}.hook_resid_post", layer, windows[:16])[:, 1:].reshape(-1, backbone.d_model)
        saes[layer], checks[f"L{layer}"] = load_checked_sae(ctx.parent(f"sae_L{layer}") / SAE_DIR, sample, params["encode_fidelity"])
    d_sae = sum(sae.cfg.d_sae for sae in saes.values())
    config = circuit.CircuitConfig.from_dict({
        "layers": layers, "ks": tuple(k for k in params["ks"] if k < d_sae), "n_random": params["n_random"],
        "n_boot": params["n_boot"], "seed": params["seed"],
    })  # fmt: skip
    result = circuit.run_circuit_faithfulness(backbone, saes, examples, config)
    write_evaluation(ctx.out, "circuit", result, checks)
