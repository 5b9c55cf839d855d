"""Stage `eval_external`: an SAE trained elsewhere must reproduce its source's codes, then is evaluated on both domains."""

from __future__ import annotations

import numpy as np

from sae_difficulty.evals import cross_domain
from sae_difficulty.evals.encode_fidelity import (
    EncodeFidelityConfig,
    load_external_sae,
    require_encode_fidelity,
)
from sae_difficulty.modalities.llm.domains import read_domain_cache
from sae_difficulty.pipeline.artifacts import ACTIVATIONS
from sae_difficulty.pipeline.runner import NodeContext
from sae_difficulty.pipeline.study_evals import DOMAINS
from sae_difficulty.saes.encoding import sae_architecture
from sae_difficulty.stages.evals_common import write_evaluation


def build(ctx: NodeContext) -> None:
    params = ctx.params
    heldout = {domain: np.asarray(read_domain_cache(ctx.parent(f"acts_{domain}") / ACTIVATIONS)[1]) for domain in DOMAINS}
    sae = load_external_sae(params["path"], params["format"])
    fidelity = EncodeFidelityConfig.from_dict(params["encode_fidelity"])
    check = require_encode_fidelity(sae, params["path"], params["format"], heldout["prose"][: fidelity.n_rows], fidelity)
    result = cross_domain.evaluate_cross_domain({params["name"]: (sae, "external", sae_architecture(sae))}, heldout,
                                                cross_domain.CrossDomainConfig())  # fmt: skip
    # no literature claim about an arbitrary external SAE: claim_sign 0
    write_evaluation(ctx.out, "external", result, {"encode_fidelity": check.to_dict()}, evaluation="cross_domain", claim_sign=0)
