"""Stage domain_activations: one domain's residual rows (an SAE training cache) with the held-out
token windows they came from (BOS first, BOS rows left out), so every held-out row can be
recomputed from its tokens."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import zarr
from conftest import node_context

from sae_difficulty.modalities import load_backbone
from sae_difficulty.pipeline.artifacts import ACTIVATIONS
from sae_difficulty.stages import domain_activations
from sae_difficulty.utils.io import read_json

from .conftest import LLM_BACKBONE, LLM_CORPUS

CONTEXT = 32
PARAMS = {"layer": 1, "seed": 0, "tokens": 512, "heldout_tokens": 256, "context_length": CONTEXT, "batch_size": 8,
          "corpus": LLM_CORPUS}  # fmt: skip


@pytest.fixture(scope="module")
def domain_nodes(llm_backbone: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("domains")
    nodes = {}
    for domain in ("prose", "code"):
        ctx = node_context("domain_activations", {**PARAMS, "domain": domain}, root / f"{domain:0<12}", {"backbone": llm_backbone})
        domain_activations.build(ctx)
        nodes[domain] = ctx.out
    return nodes


def test_cache_has_the_configured_rows_and_names_its_hook(domain_nodes: dict[str, Path]) -> None:
    for domain, node in domain_nodes.items():
        summary = read_json(node / "domain_activations.json")
        group = zarr.open_group(str(node / ACTIVATIONS), mode="r")
        assert summary["domain"] == domain and summary["hook_name"] == "blocks.1.hook_resid_post"
        assert group["train"].shape == (PARAMS["tokens"], LLM_BACKBONE["d_model"])
        assert group["heldout"].shape == (PARAMS["heldout_tokens"], LLM_BACKBONE["d_model"])
        windows = -(-PARAMS["heldout_tokens"] // (CONTEXT - 1))  # each window gives CONTEXT - 1 rows
        assert group["heldout_tokens"].shape == (windows, CONTEXT)
    prose, code = (np.asarray(zarr.open_group(str(domain_nodes[d] / ACTIVATIONS), mode="r")["heldout_tokens"][...])
                   for d in ("prose", "code"))  # fmt: skip
    assert not np.array_equal(prose, code)  # different text


def test_heldout_rows_are_the_residual_stream_of_the_stored_windows(domain_nodes: dict[str, Path], llm_backbone: Path) -> None:
    group = zarr.open_group(str(domain_nodes["prose"] / ACTIVATIONS), mode="r")
    windows = np.asarray(group["heldout_tokens"][...])
    _, backbone = load_backbone(llm_backbone)
    with torch.no_grad():
        _, cache = backbone.model.run_with_cache(torch.from_numpy(windows[:2]).long(), names_filter="blocks.1.hook_resid_post")
    expected = cache["blocks.1.hook_resid_post"][:, 1:].reshape(-1, LLM_BACKBONE["d_model"]).numpy()  # without BOS
    assert (windows[:, 0] == backbone.bos_id).all()
    np.testing.assert_allclose(np.asarray(group["heldout"][: 2 * (CONTEXT - 1)]), expected, rtol=1e-4, atol=1e-4)
