"""Stage sae_activations, one test per source beyond the demo's corpus: the task-split caches
(training rows only, a test example never enters), the hub text dataset read up to its
budget, and the stage's layer check against the loaded model before any work."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import zarr
from conftest import node_context

from sae_difficulty.pipeline.artifacts import ACTIVATIONS, CODES, EXAMPLES
from sae_difficulty.saes.cache import open_training_cache, write_activation_cache
from sae_difficulty.utils.errors import InputError
from sae_difficulty.utils.io import read_json

from .conftest import TinyStudy

MARKER = 12345.0  # every value of every test example's rows: a cache holding one is a leak
D = 6


def planted_extract(root: Path, n_examples: int = 40, seed: int = 0) -> tuple[Path, pd.DataFrame, np.ndarray, np.ndarray]:
    """An extract node: examples of 2-7 token rows; a training example's row j of example i is
    (i, j, noise...), a test example's rows are all MARKER. Returns (dir, split table, tokens, offsets)."""
    rng = np.random.default_rng(seed)
    lengths = rng.integers(2, 8, n_examples)
    offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
    split = np.where(rng.random(n_examples) < 0.3, "test", "train")
    tokens = rng.normal(size=(int(offsets[-1]), D)).astype(np.float32)
    for i in range(n_examples):
        rows = slice(offsets[i], offsets[i + 1])
        if split[i] == "test":
            tokens[rows] = MARKER
        else:
            tokens[rows, 0], tokens[rows, 1] = i, np.arange(lengths[i])
    root.mkdir(parents=True)
    write_activation_cache(root / ACTIVATIONS, tokens, offsets, chunk_rows=16)  # chunks cut across examples
    examples = pd.DataFrame({"id": [f"ex{i}" for i in range(n_examples)], "split": split, "fold": np.arange(n_examples) % 3})
    examples.to_parquet(root / EXAMPLES)
    return root, examples, tokens, offsets


def build_task_cache(tmp_path: Path, extract_dir: Path, source: str, positions: str, heldout_fraction: float = 0.2) -> Path:
    from sae_difficulty.stages import sae_activations

    params = {"modality": "llm", "dataset": "hellaswag", "layer": 1, "seed": 3, "source": source,
              "positions": positions, "heldout_fraction": heldout_fraction}  # fmt: skip
    ctx = node_context("sae_activations", params, tmp_path / f"{source}_{positions}", {"extract": extract_dir})
    sae_activations.build(ctx)
    return ctx.out


@pytest.mark.parametrize("source, positions", [("task_train", "last"), ("task_train_allpos", "all")])
def test_task_cache_holds_training_rows_only_and_never_a_test_row(tmp_path: Path, source: str, positions: str) -> None:
    extract_dir, examples, tokens, offsets = planted_extract(tmp_path / "extract")
    out = build_task_cache(tmp_path, extract_dir, source, positions)
    cache = open_training_cache(out / ACTIVATIONS)
    train, heldout = np.asarray(cache.train[...]), np.asarray(cache.heldout[...])
    both = np.concatenate([train, heldout])
    assert not np.isclose(both, MARKER).any()  # no test example's row, in either array
    is_train = (examples["split"] == "train").to_numpy()
    # every training example is there, whole, on exactly one side, in cache order
    train_ids, heldout_ids = np.unique(train[:, 0]).astype(int), np.unique(heldout[:, 0]).astype(int)
    assert set(train_ids).isdisjoint(heldout_ids) and set(train_ids) | set(heldout_ids) == set(np.flatnonzero(is_train))
    assert len(heldout_ids) == round(0.2 * is_train.sum())
    for side, ids in ((train, train_ids), (heldout, heldout_ids)):
        if positions == "last":  # the boundary row: the example's last token
            expected = np.stack([tokens[offsets[i + 1] - 1] for i in ids])
        else:
            expected = np.concatenate([tokens[offsets[i] : offsets[i + 1]] for i in ids])
        np.testing.assert_array_equal(side, expected)
    summary = read_json(out / "sae_activations.json")
    assert summary["source"] == source and summary["positions"] == positions
    assert summary["n_examples_excluded"] == int((~is_train).sum()) and summary["train_tokens"] == len(train)


def test_task_cache_refuses_a_split_table_of_another_node(tmp_path: Path) -> None:
    extract_dir, examples, _, _ = planted_extract(tmp_path / "extract")
    examples.iloc[:-1].to_parquet(extract_dir / EXAMPLES)
    with pytest.raises(InputError, match="40 examples but the split table has 39 rows"):
        build_task_cache(tmp_path, extract_dir, "task_train", "last")


def test_tsfm_task_cache_trains_an_sae_on_training_windows(tsfm_study: TinyStudy, tmp_path: Path) -> None:
    """The real extract node of the tiny TSFM study: every context step of every training window, no test window."""
    from sae_difficulty.stages import sae

    out = build_task_cache(tmp_path, tsfm_study.extract, "task_train", "all", heldout_fraction=0.1)
    cache = open_training_cache(out / ACTIVATIONS)
    examples = pd.read_parquet(tsfm_study.extract / EXAMPLES)
    group = zarr.open_group(str(tsfm_study.extract / ACTIVATIONS), mode="r")
    tokens, offsets = np.asarray(group["tokens"][...]), np.asarray(group["offsets"][...])
    rows = np.concatenate([np.asarray(cache.train[...]), np.asarray(cache.heldout[...])])
    train_rows = np.concatenate([tokens[offsets[i] : offsets[i + 1]] for i in np.flatnonzero(examples["split"] == "train")])
    test_rows = np.concatenate([tokens[offsets[i] : offsets[i + 1]] for i in np.flatnonzero(examples["split"] == "test")])
    assert len(rows) == len(train_rows)
    np.testing.assert_array_equal(np.sort(rows, axis=0), np.sort(train_rows, axis=0))
    assert not (rows[:, None, :] == test_rows[None, :, :]).all(axis=2).any()
    ctx = node_context("sae", {**tsfm_study.params["sae"], "training_tokens": 2048}, tmp_path / "sae_node", {"activations": out})
    sae.build(ctx)  # the sae stage trains on the task cache as on any other
    training = read_json(ctx.out / "training.json")
    assert training["d_in"] == tokens.shape[1] and training["n_tokens"] == 2048


def write_text_dataset(root: Path, n_rows: int) -> Path:
    """A local text dataset ``datasets.load_dataset(root, split="train")`` reads (json lines)."""
    root.mkdir(parents=True)
    words = ["alpha", "beta", "gamma", "delta", "sigma", "omega", "theta", "kappa"]
    rng = np.random.default_rng(0)
    lines = [json.dumps({"id": i, "body": " ".join(rng.choice(words, 30)) + f" document {i}."}) for i in range(n_rows)]
    (root / "train.jsonl").write_text("\n".join(lines) + "\n")
    return root


def hub_text_params(root: Path, tokens: int, heldout: int) -> dict:
    return {"modality": "llm", "layer": 1, "seed": 0, "source": "hub_text", "tokens": tokens, "heldout_tokens": heldout,
            "context_length": 16, "batch_size": 4,
            "hub_text": {"name": str(root), "config": None, "split": "train", "text_column": "body"}}  # fmt: skip


def test_hub_text_is_read_up_to_the_budget_with_fixed_heldout_documents(
    llm_backbone: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import datasets

    from sae_difficulty.modalities.llm import hub_text

    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", tmp_path / "datasets_cache")  # not the user's cache
    from sae_difficulty.modalities.llm.backbone import load_backbone
    from sae_difficulty.pipeline.artifacts import MODEL_DIR
    from sae_difficulty.stages import sae_activations

    root = write_text_dataset(tmp_path / "pile_sample", n_rows=400)
    params = hub_text_params(root, tokens=1024, heldout=256)
    ctx = node_context("sae_activations", params, tmp_path / "node", {"backbone": llm_backbone})
    sae_activations.build(ctx)
    cache = open_training_cache(ctx.out / ACTIVATIONS)
    assert cache.train.shape == (1024, 32) and cache.heldout.shape == (256, 32)
    summary = read_json(ctx.out / "sae_activations.json")
    assert 0 < summary["rows_read"] < 400  # stopped at the budget, not read whole
    # the first train window is [BOS] + the first train documents' tokens: its rows are the model's residuals
    backbone = load_backbone(llm_backbone / MODEL_DIR, device="cpu")
    texts = [json.loads(line)["body"] for line in (root / "train.jsonl").read_text().splitlines()]
    stream = []
    for index, text in enumerate(texts):
        if not hub_text.is_heldout_row(str(root), index):
            stream += backbone.tokenizer(text, add_special_tokens=False)["input_ids"] + [backbone.tokenizer.eos_token_id]
        if len(stream) >= 15:
            break
    with torch.no_grad():
        expected = backbone.model(torch.tensor([[backbone.bos_id, *stream[:15]]]), stop_at_layer=2)[0, 1:].numpy()
    np.testing.assert_allclose(np.asarray(cache.train[:15]), expected, atol=2e-5)
    assert not np.allclose(np.asarray(cache.heldout[:15]), expected, atol=1e-3)  # other documents
    with pytest.raises(InputError, match="gives only .* train tokens of the 100000 asked"):
        sae_activations.build(node_context("sae_activations", hub_text_params(root, 100_000, 256), tmp_path / "big",
                                           {"backbone": llm_backbone}))  # fmt: skip
    with pytest.raises(InputError, match="'text' is not a column"):
        bad = hub_text_params(root, 1024, 256)
        bad["hub_text"]["text_column"] = "text"
        sae_activations.build(node_context("sae_activations", bad, tmp_path / "nocol", {"backbone": llm_backbone}))


@pytest.mark.parametrize("stage", ["extract", "sae_activations"])
def test_a_layer_beyond_the_loaded_model_fails_before_any_work(llm_backbone: Path, tmp_path: Path, stage: str) -> None:
    """The depth of a model is what the job loads (a hub model's is unknown when the config is read)."""
    import importlib

    module = importlib.import_module(f"sae_difficulty.stages.{stage}")
    params = {"layer": 5, "batch_size": 4} if stage == "extract" else {
        "modality": "llm", "layer": 5, "seed": 0, "tokens": 1024, "heldout_tokens": 256, "context_length": 16, "batch_size": 4}
    ctx = node_context(stage, params, tmp_path / stage, {"backbone": llm_backbone, "tasks": tmp_path / "no_tasks_needed"})
    with pytest.raises(InputError) as error:
        module.build(ctx)
    message = str(error.value)
    assert "llm layer 5 is out of range for" in message and str(llm_backbone) in message and "valid 0..1" in message
    assert "\n" not in message and not (ctx.out / ACTIVATIONS).exists()


def save_projection_sae(node_dir: Path, d_in: int, kept: int) -> Path:
    """An ``sae`` node whose SAE reconstructs exactly the first ``kept`` dimensions and drops the rest."""
    from sae_lens import StandardSAE, StandardSAEConfig

    from sae_difficulty.pipeline.artifacts import SAE_DIR

    sae = StandardSAE(StandardSAEConfig(d_in=d_in, d_sae=2 * kept))
    eye = torch.eye(d_in)[:kept]  # [kept, d_in]
    with torch.no_grad():
        sae.W_enc.copy_(torch.cat([eye, -eye]).T)
        sae.W_dec.copy_(torch.cat([eye, -eye]))
        sae.b_enc.zero_()
        sae.b_dec.zero_()
    (node_dir / SAE_DIR).mkdir(parents=True)
    sae.save_model(str(node_dir / SAE_DIR))
    return node_dir


def test_a_boundary_token_sae_is_checked_on_boundary_rows(tmp_path: Path) -> None:
    """``sae_positions: last`` (the LM's task_train SAE): codes checks the SAE on the rows it was fitted to."""
    from sae_difficulty.stages import codes

    rng = np.random.default_rng(1)
    lengths = rng.integers(3, 6, 30)
    offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
    tokens = np.zeros((int(offsets[-1]), D), dtype=np.float32)
    tokens[:, 3:] = rng.normal(scale=10.0, size=(len(tokens), D - 3))  # inner positions: off the boundary subspace
    tokens[offsets[1:] - 1] = 0.0
    tokens[offsets[1:] - 1, :3] = rng.normal(size=(30, 3))  # boundary rows: dims 0-2 only
    extract_dir = tmp_path / "extract"
    extract_dir.mkdir()
    write_activation_cache(extract_dir / ACTIVATIONS, tokens, offsets)
    pd.DataFrame({"id": [f"ex{i}" for i in range(30)], "split": "train", "fold": 0}).to_parquet(extract_dir / EXAMPLES)
    sae_dir = save_projection_sae(tmp_path / "sae", D, kept=3)
    parents = {"sae": sae_dir, "extract": extract_dir}
    with pytest.raises(InputError, match="explained variance"):
        codes.build(node_context("codes", {"min_explained_variance": 0.9}, tmp_path / "every_row", parents))
    ctx = node_context("codes", {"min_explained_variance": 0.9, "sae_positions": "last"}, tmp_path / "boundary", parents)
    codes.build(ctx)
    code_last = np.asarray(zarr.open_group(str(ctx.out / CODES), mode="r")["last"][...])
    np.testing.assert_allclose(code_last[:, :3], np.maximum(tokens[offsets[1:] - 1, :3], 0), atol=1e-5)
