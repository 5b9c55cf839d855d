"""The Hugging Face cache fixture of :mod:`tests.hub_cache`, plus one published sae-lens release.

What a user of a published SAE has on a cluster's login node after ``hf download``:
``EleutherAI/pythia-70m-deduped`` (the model) and the files sae-lens' registry names for
``SAE.from_pretrained("pythia-70m-deduped-res-sm", "blocks.3.hook_resid_post")``:

- the registry (sae-lens' ``pretrained_saes.yaml``) maps the release to the repository
  ``ctigges/pythia-70m-deduped__res-sm_processed`` and the sae_id to the folder ``3-res-sm``;
- the release's ``conversion_func`` is null, so sae-lens reads it with
  ``sae_lens_huggingface_loader``, which downloads ``<folder>/cfg.json``,
  ``<folder>/sae_weights.safetensors`` and, when the repository has it,
  ``<folder>/sparsity.safetensors`` (a missing one is skipped).

The release is sae-lens' smallest Pythia-70m-deduped residual release (``res-sm``: Marks et
al.'s dictionaries, 32,768 features on the 512-wide residual stream, one per hook). Its
``cfg.json`` is written in the pre-6.0 sae-lens layout these processed repositories carry
(``hook_point`` / ``hook_point_layer`` / ``activation_fn_str``; sae-lens' ``handle_pre_6_0_config``
renames them at load), with the values the registry states (model, hook, neuronpedia id) and
the shapes the dictionaries have. The file was reconstructed from what sae-lens' loader reads,
not copied from the hub (no network here). Weights are random float32 of the real shapes.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any

from hub_cache import PYTHIA_410M_CONFIG, _put_snapshot, _write_pythia, build_hf_home

PYTHIA_70M_DEDUPED = "EleutherAI/pythia-70m-deduped"
#: The published config.json of EleutherAI/pythia-70m-deduped: the Pythia suite's shared fields,
#: with its own sizes.
PYTHIA_70M_DEDUPED_CONFIG: dict[str, Any] = {**PYTHIA_410M_CONFIG, "hidden_size": 512, "intermediate_size": 2048,
                                             "num_attention_heads": 8, "num_hidden_layers": 6}  # fmt: skip

RES_SM_RELEASE = "pythia-70m-deduped-res-sm"
RES_SM_REPO = "ctigges/pythia-70m-deduped__res-sm_processed"
RES_SM_D_IN, RES_SM_D_SAE = 512, 32768
#: sae_id -> folder in the repository (sae-lens' registry entry of the release).
RES_SM_FOLDERS = {"blocks.0.hook_resid_pre": "e-res-sm", **{f"blocks.{layer}.hook_resid_post": f"{layer}-res-sm" for layer in range(6)}}


def res_sm_cfg(sae_id: str) -> dict[str, Any]:
    """``cfg.json`` of one SAE of the release (pre-6.0 sae-lens keys, see the module docstring)."""
    layer = int(sae_id.split(".")[1])
    folder = RES_SM_FOLDERS[sae_id]
    neuronpedia = "e-att-sm" if folder == "e-res-sm" else folder  # as the registry lists it
    return {
        "architecture": "standard", "d_in": RES_SM_D_IN, "d_sae": RES_SM_D_SAE, "dtype": "float32", "device": "cpu",
        "model_name": "pythia-70m-deduped", "hook_point": sae_id, "hook_point_layer": layer, "hook_point_head_index": None,
        "activation_fn_str": "relu", "apply_b_dec_to_input": True, "finetuning_scaling_factor": False,
        "sae_lens_training_version": None, "prepend_bos": True, "dataset_path": "EleutherAI/the_pile_deduplicated",
        "context_size": 128, "normalize_activations": "none", "neuronpedia_id": f"pythia-70m-deduped/{neuronpedia}",
    }  # fmt: skip


def _write_res_sm_sae(out: Path, sae_id: str, seed: int) -> None:
    """One SAE folder: cfg.json, random sae_weights.safetensors of the real shapes, sparsity.safetensors."""
    import torch
    from safetensors.torch import save_file

    generator = torch.Generator().manual_seed(seed)
    folder = out / RES_SM_FOLDERS[sae_id]
    folder.mkdir(parents=True)
    w_dec = torch.randn(RES_SM_D_SAE, RES_SM_D_IN, generator=generator)
    w_dec /= w_dec.norm(dim=1, keepdim=True)
    weights = {
        "W_enc": w_dec.T.contiguous(),
        "W_dec": w_dec,
        # A negative encoder bias keeps the random ReLU codes sparse, as a trained dictionary's are.
        "b_enc": torch.full((RES_SM_D_SAE,), -0.5),
        "b_dec": 0.01 * torch.randn(RES_SM_D_IN, generator=generator),
    }
    save_file(weights, str(folder / "sae_weights.safetensors"))
    save_file({"sparsity": torch.full((RES_SM_D_SAE,), -3.0)}, str(folder / "sparsity.safetensors"))
    (folder / "cfg.json").write_text(json.dumps(res_sm_cfg(sae_id)))


def write_res_sm_release(hf_home: Path, sae_ids: tuple[str, ...] = ("blocks.3.hook_resid_post",), seed: int = 0) -> Path:
    """The release's repository in the hub cache with the SAEs ``sae_ids``; returns its snapshot folder."""
    with tempfile.TemporaryDirectory(dir=hf_home) as staging:
        files = Path(staging)
        for i, sae_id in enumerate(sae_ids):
            _write_res_sm_sae(files, sae_id, seed + i)
        (files / "README.md").write_text(f"# {RES_SM_REPO}\n\nRandom weights in the release's layout (test fixture).\n")
        return _put_snapshot(hf_home, "model", RES_SM_REPO, files)


def write_pythia_70m_deduped(hf_home: Path, seed: int = 0) -> Path:
    """EleutherAI/pythia-70m-deduped: the real config.json, random weights, hubfix's Pythia tokenizer."""
    with tempfile.TemporaryDirectory(dir=hf_home) as staging:
        files = Path(staging)
        _write_pythia(PYTHIA_70M_DEDUPED_CONFIG, files, seed)
        (files / "README.md").write_text(f"# {PYTHIA_70M_DEDUPED}\n\nRandom weights with the published config (test fixture).\n")
        return _put_snapshot(hf_home, "model", PYTHIA_70M_DEDUPED, files)


def build_hf_home_with_saes(hf_home: Path, datasets: tuple[str, ...] = ("Rowan/hellaswag", "rajpurkar/squad", "NeelNanda/pile-10k")) -> Path:
    """The datasets of :func:`tests.hub_cache.build_hf_home`, Pythia-70m-deduped and the res-sm release."""
    hf_home = build_hf_home(hf_home, models=(), datasets=datasets)
    write_pythia_70m_deduped(hf_home)
    write_res_sm_release(hf_home)
    return hf_home
