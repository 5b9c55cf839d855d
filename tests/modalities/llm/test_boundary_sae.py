"""Causal patching with a boundary-token SAE (``sae_positions: "last"``, the LM's task_train SAE):
its fidelity is checked on the boundary rows it was fitted to, not on every prompt position."""

from __future__ import annotations

import pandas as pd
import pytest
import torch

from sae_difficulty.modalities.llm import patching as llm_patching
from sae_difficulty.modalities.llm.prompts import encode_continuation, encode_prompt
from sae_difficulty.modalities.llm.tasks import load_examples
from sae_difficulty.utils.errors import InputError

from .test_patching import squad_dir, tiny  # noqa: F401 (module fixtures)

N_EXAMPLES = 5


def boundary_projection_sae(backbone, tasks_dir):
    """An SAE whose reconstruction is the projection onto the span of the patched examples' boundary
    residuals: exact at the boundary, lossy at every other prompt position."""
    from sae_lens import StandardSAE, StandardSAEConfig

    _, examples = load_examples(tasks_dir)
    split = dict(pd.read_parquet(tasks_dir / "examples.parquet")[["id", "split"]].itertuples(index=False))
    rows = []
    for ex in [ex for ex in examples if split[ex.id] == "test"][:N_EXAMPLES]:
        answer = encode_continuation(backbone, ex.continuations[ex.target])
        prompt = encode_prompt(backbone, ex.prompt, reserve=len(answer))
        rows.append(torch.from_numpy(llm_patching.residuals(backbone, "blocks.0.hook_resid_post", 0, torch.tensor([prompt]))[0, -1]))
    basis = torch.linalg.qr(torch.stack(rows).T.double()).Q.float()  # [d, r], orthonormal columns
    d, r = basis.shape
    sae = StandardSAE(StandardSAEConfig(d_in=d, d_sae=2 * r))
    with torch.no_grad():
        sae.W_enc.copy_(torch.cat([basis, -basis], dim=1))
        sae.W_dec.copy_(torch.cat([basis.T, -basis.T]))
        sae.b_enc.zero_()
        sae.b_dec.zero_()
    return sae


def test_boundary_sae_is_checked_and_exact_on_the_boundary(tiny, squad_dir):  # noqa: F811
    backbone, _ = tiny
    sae = boundary_projection_sae(backbone, squad_dir)
    params = {"max_examples": N_EXAMPLES, "min_explained_variance": 0.999}
    with pytest.raises(InputError, match="explained variance"):
        llm_patching.causal_patch(backbone, sae, squad_dir, 0, [0, 1], params, seed=0)  # every prompt position
    table = llm_patching.causal_patch(backbone, sae, squad_dir, 0, [0, 1], {**params, "sae_positions": "last"}, seed=0)
    boundary = table[table["positions"] == "last"]
    assert boundary["id"].nunique() == N_EXAMPLES
    # the boundary reconstruction is exact, so patching it leaves the answer's loss as it was
    assert (boundary["nats_recon"] - boundary["nats_clean"]).abs().max() < 1e-4
