"""Stage `eval_cross_domain`: prose- and code-trained SAEs, each evaluated in and out of its domain."""

from __future__ import annotations

import numpy as np

from sae_difficulty.evals import cross_domain
from sae_difficulty.modalities import load_backbone
from sae_difficulty.modalities.llm.domains import read_domain_cache
from sae_difficulty.pipeline.artifacts import ACTIVATIONS, SAE_DIR
from sae_difficulty.pipeline.runner import NodeContext
from sae_difficulty.pipeline.study_evals import DOMAINS
from sae_difficulty.stages.evals_common import load_checked_sae, write_evaluation
from sae_difficulty.utils.io import write_parquet


def build(ctx: NodeContext) -> None:
    params = ctx.params
    caches = {domain: read_domain_cache(ctx.parent(f"acts_{domain}") / ACTIVATIONS) for domain in DOMAINS}
    context_length = caches[DOMAINS[0]][2].shape[1]
    # Rows of one window are correlated: the CI resamples whole windows.
    config = cross_domain.CrossDomainConfig.from_dict(
        {**{key: params[key] for key in ("n_top_features", "n_top_contexts", "context_tokens", "seed")},
         "bootstrap_block_rows": context_length - 1}
    )  # fmt: skip
    heldout = {domain: np.asarray(cache[1]) for domain, cache in caches.items()}
    tokens = {domain: cache[2] for domain, cache in caches.items()}
    saes, checks = {}, {}
    for role, directory in ctx.parents_with_prefix("sae_").items():
        _, domain, architecture = role.split("_", 2)
        sae, checks[role] = load_checked_sae(directory / SAE_DIR, heldout[domain], params["encode_fidelity"])
        saes[f"{domain}-{architecture}"] = (sae, domain, architecture)
    result = cross_domain.evaluate_cross_domain(saes, heldout, config)
    write_evaluation(ctx.out, "cross_domain", result, checks)
    write_parquet(ctx.out / "selectivity.parquet", result.selectivity_table())
    _, backbone = load_backbone(ctx.parent("backbone"))

    def decode_token(token_id: int) -> str:
        return backbone.tokenizer.decode([int(token_id)])

    pages = [
        cross_domain.top_contexts_markdown(sae, name, heldout, tokens, decode_token, result.selectivity[name], config)
        for name, (sae, _, _) in saes.items()
    ]
    title = f"# Most domain-selective features (layer {params['layer']})\n\n"
    (ctx.out / "top_contexts.md").write_text(title + "\n\n".join(pages))
