"""LLM extraction (zarr), SAE training activations, spliced loss and causal reconstruction patching."""

from __future__ import annotations

import json
import os

import numpy as np
import pandas as pd
import pytest
import torch
import zarr

from sae_difficulty.core.stats import feature_effect_tests
from sae_difficulty.modalities.llm import backbone as llm_backbone
from sae_difficulty.modalities.llm import patching as llm_patching
from sae_difficulty.modalities.llm.prompts import encode_prompt, encode_prompts
from sae_difficulty.modalities.llm.tasks import build_tasks
from sae_difficulty.saes.cache import open_activation_cache, open_training_cache
from sae_difficulty.utils.errors import InputError

from .test_tasks import make_tiny_model

os.environ["HF_HUB_OFFLINE"] = "1"
torch.set_num_threads(1)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    from transformers import GPTNeoXForCausalLM

    path = make_tiny_model(tmp_path_factory.mktemp("tiny"), n_ctx=256, seed=1)
    return llm_backbone.load_backbone(path, device="cpu"), GPTNeoXForCausalLM.from_pretrained(path).eval()


@pytest.fixture(scope="module")
def squad_dir(tmp_path_factory):
    """Demo SQuAD tasks whose gold answer is always the same word (so one direction can drive it)."""
    out = tmp_path_factory.mktemp("squad")
    build_tasks("squad", {"n_examples": 24}, out, seed=0)
    records = [json.loads(line) for line in (out / "records.jsonl").read_text().splitlines()]
    for record in records:
        record["answers"] = {"text": ["value"], "answer_start": [0]}
    (out / "records.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    return out


def make_sae(d_in: int, extra_rows: list[tuple[float, torch.Tensor]]):
    """An sae-lens ReLU SAE that reconstructs exactly: codes [relu(x), relu(-x)], W_dec [I; -I].

    Each extra feature has a zero encoder column, encoder bias ``bias`` (> 0: always on
    with code ``bias``; < 0: never fires) and decoder row ``direction``.
    """
    from sae_lens import StandardSAE, StandardSAEConfig

    d_sae = 2 * d_in + len(extra_rows)
    sae = StandardSAE(StandardSAEConfig(d_in=d_in, d_sae=d_sae))
    eye = torch.eye(d_in)
    with torch.no_grad():
        sae.W_enc.zero_()
        sae.W_enc[:, : 2 * d_in] = torch.cat([eye, -eye], dim=1)
        sae.W_dec.zero_()
        sae.W_dec[: 2 * d_in] = torch.cat([eye, -eye], dim=0)
        sae.b_enc.zero_()
        sae.b_dec.zero_()
        for i, (bias, direction) in enumerate(extra_rows):
            sae.b_enc[2 * d_in + i] = bias
            sae.W_dec[2 * d_in + i] = direction
    return sae.eval()


def test_extraction_equals_running_the_model_directly(tiny, tmp_path):
    backbone, hf = tiny
    tasks = tmp_path / "tasks"
    build_tasks("hellaswag", {"n_examples": 7}, tasks, seed=0)
    summary = llm_patching.extract(backbone, tasks, 0, tmp_path / "acts.zarr", {"batch_size": 3})
    cache = open_activation_cache(tmp_path / "acts.zarr")  # validates the on-disk contract
    assert cache.n_examples == 7 and cache.d == backbone.d_model == summary["d_model"]
    records = [json.loads(line) for line in (tasks / "records.jsonl").read_text().splitlines()]
    for i, record in enumerate(records):
        ids = torch.tensor([[backbone.bos_id] + backbone.tokenizer(record["ctx"], add_special_tokens=False)["input_ids"]])
        with torch.no_grad():
            expected = hf(input_ids=ids, output_hidden_states=True).hidden_states[1][0, 1:].numpy()  # after block 0
        rows = cache.tokens[cache.offsets[i] : cache.offsets[i + 1]]
        np.testing.assert_allclose(rows, expected, atol=2e-5)
        np.testing.assert_array_equal(cache.last[i], rows[-1])
        np.testing.assert_allclose(cache.mean[i], expected.mean(axis=0), atol=2e-5)
    side = pd.read_parquet(tmp_path / "acts_examples.parquet")
    assert list(side["id"]) == [r["id"] for r in records]
    assert list(side["offset"]) == list(cache.offsets[:-1])
    assert zarr.open_group(str(tmp_path / "acts.zarr"), mode="r").attrs["hook_name"] == "blocks.0.hook_resid_post"

    llm_patching.extract(backbone, tasks, 0, tmp_path / "one.zarr", {"batch_size": 1})  # batching does not matter
    np.testing.assert_allclose(open_activation_cache(tmp_path / "one.zarr").tokens[...], cache.tokens[...], atol=2e-5)
    with pytest.raises(InputError, match="out of range"):
        llm_patching.extract(backbone, tasks, 2, tmp_path / "bad.zarr", {})


def test_training_activations_come_from_held_apart_text(tiny, tmp_path):
    backbone, _ = tiny
    params = {"tokens": 1000, "heldout_tokens": 300, "context_length": 33, "batch_size": 4}
    summary = llm_patching.training_activations(backbone, 1, tmp_path / "sae.zarr", params, seed=5)
    cache = open_training_cache(tmp_path / "sae.zarr")
    assert cache.train.shape == (1000, backbone.d_model) and cache.heldout.shape == (300, backbone.d_model)
    assert summary["train_tokens"] == 1000
    windows = llm_patching.text_windows(backbone, "sae", 33, seed=5)
    with torch.no_grad():
        _, run = backbone.model.run_with_cache(windows[:1], names_filter="blocks.1.hook_resid_post")
    np.testing.assert_allclose(cache.train[:32], run["blocks.1.hook_resid_post"][0, 1:].numpy(), atol=1e-5)
    assert not np.allclose(cache.train[:32], cache.heldout[:32])
    with pytest.raises(InputError, match="token budget"):
        llm_patching.training_activations(backbone, 1, tmp_path / "big.zarr", {**params, "heldout_tokens": 10**9}, seed=5)


def test_identity_sae_patches_to_exactly_zero(tiny, squad_dir):
    backbone, _ = tiny
    d = backbone.d_model
    sae = make_sae(d, [(-1.0, torch.randn(d)), (-1.0, torch.randn(d))])  # two features that never fire
    dead = [2 * d, 2 * d + 1]
    table = llm_patching.causal_patch(backbone, sae, squad_dir, 0, [dead[0], 3, dead[1]], {"max_examples": 5}, seed=0)
    assert set(table.columns) >= {"id", "feature", "positions", "delta", "nats_recon", "nats_clean"}
    assert len(table) == 5 * 3 * 2 and set(table["positions"]) == {"last", "all"}
    assert (table["nats_recon"] == table["nats_clean"]).all()
    assert (table.loc[table["feature"].isin(dead), "delta"] == 0.0).all()
    # ablating half of a coordinate of the residual is a real intervention: patching is live
    assert (table.loc[(table["feature"] == 3) & (table["positions"] == "all"), "delta"] != 0).any()

    loss = llm_patching.spliced_loss(backbone, sae, 0, {"n_sequences": 6, "context_length": 32}, seed=0)
    assert loss["loss_spliced"] == loss["loss_clean"] and loss["delta_nats"] == 0.0
    assert loss["fraction_recovered"] == 1.0 and loss["loss_zero_ablation"] != loss["loss_clean"]


def test_all_positions_patch_the_prompt_only_and_only_test_examples(tiny, squad_dir, monkeypatch):
    """Pins item 4 of issue 17: the LM's "all positions" patch used to overwrite the answer tokens too
    (the TSFM patches its context only) and patched the first examples whatever their split. Now the
    rows that change are the prompt's (after BOS), and every patched example is a test example."""
    backbone, _ = tiny
    d = backbone.d_model
    sae = make_sae(d, [(1.0, 0.01 * torch.ones(d))])  # always on: the reconstruction moves every patched position
    original = backbone.model.run_with_hooks
    changed: list[tuple[int, int]] = []  # (last changed position of an "all" row, sequence length)

    def spy(tokens, fwd_hooks):
        (name, patch), = fwd_hooks

        def recording(resid, hook):
            out = patch(resid, hook)
            rows = (out != resid).any(dim=-1)  # [rows, positions]
            all_row = rows[3]  # rows: clean, last (recon, ablated), all (recon, ablated)
            changed.append((int(torch.nonzero(all_row).max()), resid.shape[1]))
            return out

        return original(tokens, fwd_hooks=[(name, recording)])

    monkeypatch.setattr(backbone.model, "run_with_hooks", spy)
    table = llm_patching.causal_patch(backbone, sae, squad_dir, 0, [2 * d], {}, seed=0)
    answer_tokens = table.drop_duplicates("id")["n_answer_tokens"].to_numpy()
    for (last_changed, length), n_answer in zip(changed, answer_tokens):
        assert last_changed == length - n_answer - 1  # the last prompt token; no answer token is touched
    split = pd.read_parquet(squad_dir / "examples.parquet").set_index("id")["split"]
    assert set(split[table["id"].unique()]) == {"test"} and table["id"].nunique() == (split == "test").sum()


def test_planted_feature_is_significant_and_dead_one_is_not(tiny, squad_dir):
    backbone, _ = tiny
    d, layer = backbone.d_model, backbone.n_layers - 1
    answer_token = backbone.encode(" value")[0]
    W_U = backbone.model.W_U.detach()
    direction = W_U[:, answer_token] - W_U.mean(dim=1)  # raises the answer logit after ln_final
    with torch.no_grad():
        _, run = backbone.model.run_with_cache(
            torch.tensor([[backbone.bos_id] + backbone.encode("A text to measure the residual scale of.")])
        )
    residual = run[f"blocks.{layer}.hook_resid_post"][0, 1:]
    scale = 0.5 * (residual - residual.mean(0)).norm(dim=1).mean()
    direction = direction / direction.norm() * scale
    sae = make_sae(d, [(1.0, direction), (-1.0, direction)])  # planted: always on; dead: never fires
    planted, dead = 2 * d, 2 * d + 1

    table = llm_patching.causal_patch(backbone, sae, squad_dir, layer, [planted, dead], {}, seed=0)
    for positions in ("last", "all"):
        deltas = table[table["positions"] == positions].pivot(index="id", columns="feature", values="delta")
        tests = feature_effect_tests(deltas[[planted, dead]].to_numpy(), correction="holm")
        assert bool(tests["significant"].iloc[0]) and deltas[planted].mean() > 0
        assert not bool(tests["significant"].iloc[1]) and (deltas[dead] == 0).all()


def test_missing_or_untrained_sae_fails_with_one_line(tiny, squad_dir):
    from sae_lens import StandardSAE, StandardSAEConfig

    backbone, _ = tiny
    torch.manual_seed(0)
    untrained = StandardSAE(StandardSAEConfig(d_in=backbone.d_model, d_sae=4 * backbone.d_model)).eval()
    with pytest.raises(InputError, match="explained variance"):
        llm_patching.causal_patch(backbone, untrained, squad_dir, 0, [0], {"max_examples": 4}, seed=0)
    with pytest.raises(InputError, match="no SAE"):
        llm_patching.causal_patch(backbone, None, squad_dir, 0, [0], {}, seed=0)
    with pytest.raises(InputError, match="out of range"):
        llm_patching.causal_patch(backbone, untrained, squad_dir, 7, [0], {}, seed=0)
    wrong_width = StandardSAE(StandardSAEConfig(d_in=backbone.d_model + 1, d_sae=8))
    with pytest.raises(InputError, match="d_in"):
        llm_patching.causal_patch(backbone, wrong_width, squad_dir, 0, [0], {}, seed=0)
    good = make_sae(backbone.d_model, [])
    assert llm_patching.check_sae_fidelity(good, np.random.default_rng(0).normal(size=(50, backbone.d_model)), 0.99) == 1.0


def test_length_sorted_batches_cover_each_window_once_and_cut_padding():
    rng = np.random.default_rng(0)
    batch_size = 4
    window = llm_patching.SORT_WINDOW_BATCHES * batch_size
    lengths = rng.integers(1, 200, size=2 * window + 7)
    plan = llm_patching.length_sorted_batches(lengths, batch_size)
    assert [len(members) for members, _ in plan] == [window, window, 7]
    for number, (members, batches) in enumerate(plan):
        np.testing.assert_array_equal(members, np.arange(number * window, number * window + len(members)))  # tasks order
        flat = np.concatenate(batches)
        assert sorted(flat.tolist()) == members.tolist() and all(len(b) <= batch_size for b in batches)
        assert np.all(np.diff(lengths[flat]) >= 0)  # batched by length inside the window

    def padded(batches):
        return sum(len(b) * int(lengths[b].max()) for b in batches)

    in_order = [np.arange(s, min(s + batch_size, len(lengths))) for s in range(0, len(lengths), batch_size)]
    assert padded([b for _, batches in plan for b in batches]) < 0.7 * padded(in_order)
    with pytest.raises(InputError, match="batch_size"):
        llm_patching.length_sorted_batches(lengths, 0)


def test_batched_prompt_encoding_equals_one_by_one(tiny):
    backbone, _ = tiny
    prompts = ["A short prompt.", "", "word " * 400, "Another, longer prompt: with punctuation!"]  # the third exceeds n_ctx
    batched = encode_prompts(backbone, prompts, reserve=5)
    assert batched == [encode_prompt(backbone, p, reserve=5) for p in prompts]
    assert len(batched[2]) == backbone.n_ctx - 5 and batched[2][0] == backbone.bos_id  # left-truncated, BOS kept


def test_examples_the_probe_filters_dropped_are_not_patched(tiny, squad_dir):
    """``exclude_ids`` (the probe's near-duplicate / memorised prompts) leaves those test examples out."""
    backbone, _ = tiny
    d = backbone.d_model
    sae = make_sae(d, [(-1.0, torch.randn(d))])
    split = pd.read_parquet(squad_dir / "examples.parquet").set_index("id")["split"]
    test_ids = list(split[split == "test"].index)
    dropped = test_ids[:2]
    table = llm_patching.causal_patch(backbone, sae, squad_dir, 0, [3], {"max_examples": 4, "exclude_ids": dropped}, seed=0)
    assert list(table["id"].unique()) == test_ids[2:6]
    with pytest.raises(InputError, match="exclude_ids"):
        llm_patching.causal_patch(backbone, sae, squad_dir, 0, [3], {"exclude_ids": test_ids}, seed=0)
