"""Residual-stream extraction, SAE splicing and causal reconstruction patching (TransformerLens hooks).

Positions: every prompt starts with BOS (``<|endoftext|>``), a context-free attention
sink whose residual is the same for every example and much larger than the others.
It is never extracted, never written to an SAE cache and never patched: the SAEs are
trained and evaluated on the positions that carry text.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
import zarr
from tqdm.auto import tqdm

from sae_difficulty.core import sae_metrics
from sae_difficulty.modalities.llm import corpus as llm_corpus
from sae_difficulty.modalities.llm.backbone import Backbone, check_layer, token_stream
from sae_difficulty.modalities.llm.prompts import (
    encode_continuation,
    encode_prompt,
    encode_prompts,
    right_pad,
)
from sae_difficulty.modalities.llm.scoring import token_nll
from sae_difficulty.modalities.llm.tasks import load_examples
from sae_difficulty.saes.cache import ChunkAlignedWriter
from sae_difficulty.utils.errors import InputError
from sae_difficulty.utils.io import write_parquet

CHUNK_ROWS = 4096
POSITIONS = ("last", "all")
#: Prompts are length-sorted into batches within windows of this many batches (see ``extract``).
SORT_WINDOW_BATCHES = 64


def row_array(group: zarr.Group, name: str, rows: int, d: int) -> zarr.Array:
    """A preallocated float32 [rows, d] array, uncompressed (activations barely compress)."""
    return group.create_array(
        name, shape=(rows, d), chunks=(max(1, min(CHUNK_ROWS, rows)), d), dtype="float32", compressors=None, fill_value=0.0
    )


def _pad_id(backbone: Backbone) -> int:
    pad = backbone.tokenizer.pad_token_id
    return int(pad) if pad is not None else backbone.bos_id


@torch.no_grad()
def residuals(backbone: Backbone, hook_name: str, layer: int, tokens: torch.Tensor) -> np.ndarray:
    """``hook_name`` activations of a token batch as float32 numpy [batch, pos, d] (blocks above ``layer`` skipped)."""
    _, cache = backbone.model.run_with_cache(tokens.to(backbone.device), names_filter=hook_name, stop_at_layer=layer + 1)
    return cache[hook_name].float().cpu().numpy()


# ----------------------------------------------------------------------------- extraction


def length_sorted_batches(lengths: np.ndarray, batch_size: int) -> list[tuple[np.ndarray, list[np.ndarray]]]:
    """How ``extract`` batches prompts: windows of ``SORT_WINDOW_BATCHES * batch_size``
    consecutive examples (tasks order), each split into batches of ``batch_size`` example
    indices sorted by ``lengths`` (stable, so ties keep tasks order). Returns
    ``[(window members in tasks order, [index batches])]``. Sorting only inside a window
    keeps the rows waiting to be written in tasks order bounded by one window."""
    if batch_size < 1:
        raise InputError(f"llm extract: batch_size must be >= 1, got {batch_size}")
    lengths = np.asarray(lengths)
    window = SORT_WINDOW_BATCHES * batch_size
    plan = []
    for window_start in range(0, len(lengths), window):
        members = np.arange(window_start, min(window_start + window, len(lengths)))
        by_length = members[np.argsort(lengths[members], kind="stable")]
        plan.append((members, [by_length[start : start + batch_size] for start in range(0, len(by_length), batch_size)]))
    return plan


def extract(backbone: Backbone, tasks_dir: str | Path, layer: int, out_zarr: str | Path, params: dict[str, Any]) -> dict[str, Any]:
    """Stream ``blocks.{layer}.hook_resid_post`` over every prompt into a zarr v3 activation cache.

    Writes ``tokens`` [T, d] (every prompt position after BOS, examples concatenated in
    tasks order), ``offsets`` [N+1], ``last`` [N, d] (the last prompt token: the boundary
    before the answer) and ``mean`` [N, d] (mean over the prompt positions), all float32
    but offsets; plus ``<out_zarr stem>_examples.parquet`` beside it (id, n_tokens, offset).
    ``params`` (``llm.extract``): ``batch_size`` (16).

    How, for throughput (bench/extraction.py measures it against the bare forward):

    * the forward stops after block ``layer`` (``stop_at_layer``, whose output is that
      block's ``hook_resid_post``), with no cache or hook bookkeeping;
    * examples are taken ``SORT_WINDOW_BATCHES * batch_size`` at a time (a window, in
      tasks order) and batched by prompt length inside the window, so right-padding
      wastes few positions; the window's rows are then appended in tasks order, so the
      cache does not depend on the sorting (up to float rounding of the batch shapes);
    * ``tokens`` is written in whole chunks (:class:`~sae_difficulty.saes.cache.ChunkAlignedWriter`),
      never rewriting a chunk; ``last``, ``mean`` and ``max`` ([N, d], small) are filled
      in memory and written once.

    Memory: one window of residual rows, one chunk, and ``last``/``mean``/``max``.
    """
    hook_name = check_layer(backbone, layer)
    batch_size = int(params.get("batch_size", 16))
    if batch_size < 1:
        raise InputError(f"llm extract: batch_size must be >= 1, got {batch_size}")
    spec, examples = load_examples(tasks_dir)
    prompts = encode_prompts(backbone, [ex.prompt for ex in examples])
    lengths = np.array([len(p) - 1 for p in prompts], dtype=np.int64)
    if np.any(lengths < 1):
        raise InputError(f"tasks {tasks_dir}: example {examples[int(np.argmin(lengths))].id} has an empty prompt")
    offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
    n, d = len(examples), backbone.d_model

    out_zarr = Path(out_zarr)
    group = zarr.open_group(str(out_zarr), mode="w", zarr_format=3)
    group.attrs.update(
        {
            "hook_name": hook_name,
            "layer": int(layer),
            "backbone": backbone.source,
            "dataset": spec.dataset,
            "positions": "prompt tokens after BOS",
            "n_examples": n,
            "d_model": d,
        }
    )
    group.create_array("offsets", shape=(n + 1,), chunks=(n + 1,), dtype="int64", compressors=None)[...] = offsets
    last = np.empty((n, d), dtype=np.float32)
    mean = np.empty((n, d), dtype=np.float32)
    maximum = np.empty((n, d), dtype=np.float32)
    pad = _pad_id(backbone)

    @torch.no_grad()
    def prompt_rows(indices: np.ndarray) -> list[np.ndarray]:
        resid = backbone.model(right_pad([prompts[i] for i in indices], pad).to(backbone.device), stop_at_layer=layer + 1)
        resid = resid.float().cpu().numpy()
        return [resid[j, 1 : 1 + lengths[i]] for j, i in enumerate(indices)]

    progress = tqdm(total=n, desc=f"extract {spec.dataset} L{layer}", unit="ex", file=sys.stderr, mininterval=5.0)
    with ChunkAlignedWriter(row_array(group, "tokens", int(offsets[-1]), d)) as writer:
        for members, batches in length_sorted_batches(lengths, batch_size):
            rows: dict[int, np.ndarray] = {}
            for indices in batches:
                rows.update(zip(indices.tolist(), prompt_rows(indices)))
                progress.update(len(indices))
            for i in members.tolist():
                writer.append(rows[i])
                last[i] = rows[i][-1]
                mean[i] = rows[i].mean(axis=0, dtype=np.float64)
                maximum[i] = rows[i].max(axis=0)
    progress.close()
    row_array(group, "last", n, d)[...] = last
    row_array(group, "mean", n, d)[...] = mean
    row_array(group, "max", n, d)[...] = maximum

    write_parquet(
        out_zarr.with_name(f"{out_zarr.stem}_examples.parquet"),
        pd.DataFrame({"id": [ex.id for ex in examples], "n_tokens": lengths, "offset": offsets[:-1]}),
    )
    return {
        "n_examples": n,
        "n_tokens": int(offsets[-1]),
        "d_model": d,
        "layer": int(layer),
        "hook_name": hook_name,
        "dataset": spec.dataset,
    }


# ----------------------------------------------------------------------------- text for SAEs and spliced loss


def text_windows(backbone: Backbone, role: str, context_length: int, seed: int, text_dataset: str | None = None) -> torch.Tensor:
    """Non-overlapping BOS-led token windows of held-apart text, in a seeded random order.

    Text: the corpus role ``role`` ("sae" or "heldout") of the Python-shipped corpus, or
    with ``text_dataset`` (a hub dataset or local json/jsonl file with a ``text`` field)
    its documents whose key hashes into that role (10 % heldout). Windows are shuffled so
    that every slice of the cache mixes prose and code.
    """
    if context_length < 2 or context_length > backbone.n_ctx:
        raise InputError(f"context_length={context_length}: expected 2..{backbone.n_ctx} (the model's context)")
    if text_dataset:
        import datasets

        is_file = Path(text_dataset).exists()
        table = (
            datasets.load_dataset("json", data_files=text_dataset, split="train")
            if is_file
            else datasets.load_dataset(text_dataset, split="train")
        )
        want_heldout = role == "heldout"
        texts = [t for i, t in enumerate(table["text"]) if (llm_corpus.unit_hash(f"{text_dataset}/{i}", "sae-text") < 0.1) == want_heldout]
        documents = [llm_corpus.Document(f"{text_dataset}/{i}", "prose", t) for i, t in enumerate(texts)]
    else:
        documents = llm_corpus.documents_for(role)
    return shuffled_windows(backbone, documents, context_length, seed, f"corpus role {role!r}")


def shuffled_windows(
    backbone: Backbone, documents: list[llm_corpus.Document], context_length: int, seed: int, what: str
) -> torch.Tensor:
    """``documents`` tokenized, joined by EOS and cut into non-overlapping BOS-led windows
    ``[n, context_length]``, in a seeded random order; ``what`` names the text in errors."""
    if context_length < 2 or context_length > backbone.n_ctx:
        raise InputError(f"context_length={context_length}: expected 2..{backbone.n_ctx} (the model's context)")
    stream = token_stream(backbone.tokenizer, documents)
    step = context_length - 1
    n_windows = (len(stream) - 1) // step
    if n_windows < 1:
        raise InputError(f"{what}: the text gives no window of {context_length} tokens")
    order = torch.from_numpy(np.random.default_rng(seed).permutation(n_windows))
    body = stream[(order * step)[:, None] + torch.arange(step)[None, :]]
    return torch.cat([torch.full((n_windows, 1), backbone.bos_id, dtype=torch.long), body], dim=1)


def fill_rows(
    backbone: Backbone, hook_name: str, layer: int, windows: torch.Tensor, array: zarr.Array, batch_size: int, desc: str
) -> None:
    """Write the non-BOS residual rows of ``windows`` into ``array`` until it is full.

    ``hook_name`` must be ``blocks.{layer}.hook_resid_post``: the rows come from the
    forward stopped after block ``layer`` (``stop_at_layer`` returns exactly that
    residual, without a hook cache), written in whole chunks (:class:`ChunkAlignedWriter`).
    """
    if hook_name != f"blocks.{layer}.hook_resid_post":
        raise InputError(f"{desc}: hook {hook_name!r} is not blocks.{layer}.hook_resid_post")
    budget = int(array.shape[0])
    per_window = windows.shape[1] - 1
    needed = -(-budget // per_window)
    if needed > len(windows):
        raise InputError(f"{desc}: {budget} tokens requested but the text gives only {len(windows) * per_window}; lower the token budget")
    progress = tqdm(total=budget, desc=desc, file=sys.stderr, mininterval=5.0, unit="tok")
    with ChunkAlignedWriter(array) as writer, torch.no_grad():
        for start in range(0, needed, batch_size):
            resid = backbone.model(windows[start : min(start + batch_size, needed)].to(backbone.device), stop_at_layer=layer + 1)
            rows = resid[:, 1:].float().cpu().numpy().reshape(-1, resid.shape[-1])[: budget - writer.rows_appended]
            writer.append(rows)
            progress.update(len(rows))
    progress.close()


def training_activations(backbone: Backbone, layer: int, out_zarr: str | Path, params: dict[str, Any], seed: int) -> dict[str, Any]:
    """Token-level residuals at ``layer`` for SAE training: zarr v3 ``train`` and ``heldout``.

    ``params`` (``llm.sae_activations``): ``tokens`` (200000) and ``heldout_tokens``
    (20000) rows, ``context_length`` (64) tokens per window, ``batch_size`` (32) windows
    per forward pass, ``text_dataset`` (null: the corpus roles "sae" and "heldout";
    never the tasks). Rows are chunked by 4096, float32.
    """
    hook_name = check_layer(backbone, layer)
    n_train, n_heldout = int(params.get("tokens", 200_000)), int(params.get("heldout_tokens", 20_000))
    context_length = int(params.get("context_length", 64))
    batch_size = int(params.get("batch_size", 32))
    text_dataset = params.get("text_dataset")
    if n_train < 1 or n_heldout < 1:
        raise InputError(f"llm sae_activations: tokens and heldout_tokens must be positive (got {n_train}, {n_heldout})")
    group = zarr.open_group(str(out_zarr), mode="w", zarr_format=3)
    group.attrs.update(
        {
            "hook_name": hook_name,
            "layer": int(layer),
            "backbone": backbone.source,
            "context_length": context_length,
            "text": text_dataset or "python corpus roles sae/heldout",
        }
    )
    for name, role, budget in (("train", "sae", n_train), ("heldout", "heldout", n_heldout)):
        windows = text_windows(backbone, role, context_length, seed, text_dataset)
        fill_rows(
            backbone,
            hook_name,
            layer,
            windows,
            row_array(group, name, budget, backbone.d_model),
            batch_size,
            f"sae activations {name} L{layer}",
        )
    return {"train_tokens": n_train, "heldout_tokens": n_heldout, "d_model": backbone.d_model, "layer": int(layer), "hook_name": hook_name}


# ----------------------------------------------------------------------------- SAE splicing


def _reconstruct(sae: Any, x: torch.Tensor, ablate: int | None = None) -> torch.Tensor:
    """decode(encode(x)) with feature ``ablate`` (if any) set to 0 before decoding, on ``x``'s device and dtype."""
    from sae_difficulty.saes.encoding import reconstruct

    device = getattr(sae, "device", x.device)
    return reconstruct(sae, x.to(device), None if ablate is None else [ablate]).to(x.device, x.dtype)


def check_sae_fidelity(sae: Any, activations: Any, min_explained_variance: float, what: str = "SAE") -> float:
    """Explained variance of ``sae`` on ``activations``; a one-line error below the floor.

    ``activations``: one [rows, d_in] array/tensor, or an iterable of such blocks
    (streamed, so memory stays bounded by a block). Guards the patching against a
    missing, untrained or mismatched SAE: Δnats measured through a reconstruction that
    does not reconstruct would mean nothing.
    """
    if sae is None:
        raise InputError(f"{what}: no SAE given (expected an sae-lens SAE with encode/decode)")
    blocks = [activations] if isinstance(activations, (np.ndarray, torch.Tensor)) else activations
    accumulator = sae_metrics.ReconstructionAccumulator()
    with torch.no_grad():
        for block in blocks:
            x = torch.as_tensor(np.asarray(block, dtype=np.float32))
            if x.ndim != 2 or x.shape[1] != int(sae.cfg.d_in):
                raise InputError(f"{what}: SAE d_in={sae.cfg.d_in} does not match activations of shape {tuple(x.shape)}")
            for start in range(0, len(x), CHUNK_ROWS):
                part = x[start : start + CHUNK_ROWS]
                accumulator.update(part.numpy(), _reconstruct(sae, part).float().numpy())
    if accumulator.n_rows == 0:
        raise InputError(f"{what}: no activations to check the SAE on")
    explained = float(accumulator.result()["explained_variance"])
    if not explained >= min_explained_variance:
        raise InputError(
            f"{what}: explained variance {explained:.4f} is below min_explained_variance={min_explained_variance} (missing or untrained SAE?)"
        )
    return explained


def spliced_loss(backbone: Backbone, sae: Any, layer: int, params: dict[str, Any], seed: int) -> dict[str, float]:
    """Mean next-token loss on held-out text: clean, SAE reconstruction spliced in, residual zeroed.

    Splicing and zero-ablation replace ``blocks.{layer}.hook_resid_post`` at every
    position but BOS. ``fraction_recovered`` = (zero - spliced) / (zero - clean).
    ``params`` (``llm.spliced_loss``): ``n_sequences`` (64), ``context_length`` (64), ``batch_size`` (16).
    """
    hook_name = check_layer(backbone, layer)
    windows = text_windows(backbone, "heldout", int(params.get("context_length", 64)), seed, params.get("text_dataset"))
    windows = windows[: int(params.get("n_sequences", 64))]
    batch_size = int(params.get("batch_size", 16))

    def splice(resid: torch.Tensor, hook: Any) -> torch.Tensor:
        out = resid.clone()
        out[:, 1:] = _reconstruct(sae, resid[:, 1:])
        return out

    def zero(resid: torch.Tensor, hook: Any) -> torch.Tensor:
        out = resid.clone()
        out[:, 1:] = 0.0
        return out

    totals = {"clean": 0.0, "spliced": 0.0, "zero_ablation": 0.0}
    count = 0
    with torch.no_grad():
        for start in tqdm(range(0, len(windows), batch_size), desc=f"spliced loss L{layer}", file=sys.stderr, mininterval=5.0):
            tokens = windows[start : start + batch_size].to(backbone.device)
            for name, hooks in (("clean", []), ("spliced", [(hook_name, splice)]), ("zero_ablation", [(hook_name, zero)])):
                logits = backbone.model.run_with_hooks(tokens, fwd_hooks=hooks)
                totals[name] += float(token_nll(logits, tokens).double().sum())
            count += tokens[:, 1:].numel()
    clean, spliced, zeroed = (totals[k] / count for k in ("clean", "spliced", "zero_ablation"))
    return {
        "loss_clean": clean,
        "loss_spliced": spliced,
        "loss_zero_ablation": zeroed,
        "delta_nats": spliced - clean,
        "fraction_recovered": (zeroed - spliced) / (zeroed - clean) if zeroed != clean else float("nan"),
        "n_tokens": float(count),
    }


# ----------------------------------------------------------------------------- causal patching


def causal_patch(
    backbone: Backbone,
    sae: Any,
    tasks_dir: str | Path,
    layer: int,
    features: list[int],
    params: dict[str, Any],
    seed: int,
) -> pd.DataFrame:
    """Δnats on the answer of ablating each feature inside the SAE reconstruction.

    Examples: the first ``max_examples`` of the ``split`` examples (default "test", as the
    TSFM: the probe that chose the features never saw them). For every example the answer is the correct HellaSwag
    ending after ``ctx``, or the first gold SQuAD answer after the generation prompt;
    ``nats`` = mean negative log-likelihood per answer token. At
    ``blocks.{layer}.hook_resid_post`` the activation is replaced by the SAE
    reconstruction (``nats_recon``), or by the reconstruction with feature f's code set
    to 0 (``nats_ablated``), either at the boundary position only (``positions="last"``:
    the last prompt token) or at every prompt position but BOS (``"all"``); the answer tokens,
    whose loss is measured, are never patched (as the TSFM patches its context only).
    ``delta = nats_ablated - nats_recon`` (positive: the feature helped the answer).
    ``nats_clean`` is the unpatched model. One forward pass per example evaluates all
    conditions as rows of one batch (clean, then per coverage the reconstruction and one
    row per feature), so an identity SAE gives exactly ``nats_recon == nats_clean`` and a
    feature that never fires gives exactly ``delta == 0``.

    ``params`` (``llm.causal``): ``max_examples`` (200), ``split`` ("test"; "train"/"all"), ``min_explained_variance``
    (0.5; the SAE must explain at least this much variance of the examples' prompt
    activations - with ``sae_positions: "last"`` of their boundary rows only - else a one-line error), ``exclude_ids`` (examples left out: those the
    probe's filters dropped). ``seed`` is unused (the patching is
    deterministic) and kept for the protocol.
    """
    del seed
    hook_name = check_layer(backbone, layer)
    features = [int(f) for f in features]
    if sae is None:
        raise InputError("causal_patch: no SAE given (expected an sae-lens SAE with encode/decode)")
    d_sae = int(getattr(sae.cfg, "d_sae", 0) or 0)
    if not features or any(f < 0 or (d_sae and f >= d_sae) for f in features):
        raise InputError(f"causal_patch: features {features} must be a non-empty list of indices in [0, {d_sae})")
    if int(sae.cfg.d_in) != backbone.d_model:
        raise InputError(f"causal_patch: SAE d_in={sae.cfg.d_in} does not match the model's d_model={backbone.d_model}")
    max_examples = params.get("max_examples", 200)
    spec, examples = load_examples(tasks_dir)
    split = str(params.get("split", "test"))
    if split not in ("train", "test", "all"):
        raise InputError(f"causal_patch: split {split!r}: expected 'train', 'test' or 'all'")
    if split != "all":
        split_of = dict(zip(*(pd.read_parquet(Path(tasks_dir) / "examples.parquet")[c] for c in ("id", "split"))))
        examples = [ex for ex in examples if split_of.get(ex.id) == split]
        if not examples:
            raise InputError(f"causal_patch: {tasks_dir} has no {split} examples to patch")
    excluded = set(params.get("exclude_ids") or ())
    if excluded:
        examples = [ex for ex in examples if ex.id not in excluded]
        if not examples:
            raise InputError(f"causal_patch: every {split} example of {tasks_dir} is in exclude_ids (filtered out)")
    examples = examples[: int(max_examples)] if max_examples else examples

    sequences = []
    for ex in examples:
        answer = encode_continuation(backbone, ex.continuations[ex.target])
        prompt = encode_prompt(backbone, ex.prompt, reserve=len(answer))
        sequences.append((prompt, answer))

    # fidelity on the very activations that get patched (the prompts), streamed one example at a time
    # (a boundary-token SAE, ``sae_positions: last``, on the boundary rows it was fitted to)
    first_row = -1 if params.get("sae_positions") == "last" else 1
    prompt_blocks = (residuals(backbone, hook_name, layer, torch.tensor([prompt]))[0, first_row:] for prompt, _ in sequences)
    check_sae_fidelity(sae, prompt_blocks, float(params.get("min_explained_variance", 0.5)), what=f"causal_patch SAE at {hook_name}")

    n_features = len(features)
    rows_per_coverage = 1 + n_features
    records: list[dict[str, Any]] = []
    for ex, (prompt, answer) in tqdm(
        list(zip(examples, sequences)), desc=f"causal patch {spec.dataset} L{layer}", file=sys.stderr, mininterval=5.0
    ):
        tokens = torch.tensor([prompt + answer], device=backbone.device).repeat(1 + len(POSITIONS) * rows_per_coverage, 1)
        boundary = len(prompt) - 1

        def patch(resid: torch.Tensor, hook: Any) -> torch.Tensor:
            x = resid[0, 1 : boundary + 1]  # the prompt after BOS; every row is identical up to this layer
            out = resid.clone()
            variants = [_reconstruct(sae, x)] + [_reconstruct(sae, x, ablate=f) for f in features]
            for c, coverage in enumerate(POSITIONS):
                for v, x_hat in enumerate(variants):
                    row = 1 + c * rows_per_coverage + v
                    if coverage == "last":
                        out[row, boundary] = x_hat[boundary - 1]
                    else:
                        out[row, 1 : boundary + 1] = x_hat
            return out

        with torch.no_grad():
            logits = backbone.model.run_with_hooks(tokens, fwd_hooks=[(hook_name, patch)])
        nll = token_nll(logits, tokens)[:, boundary : boundary + len(answer)].double().mean(dim=1).cpu().numpy()
        for c, coverage in enumerate(POSITIONS):
            base = 1 + c * rows_per_coverage
            for v, feature in enumerate(features):
                records.append(
                    {
                        "id": ex.id,
                        "feature": feature,
                        "positions": coverage,
                        "delta": float(nll[base + 1 + v] - nll[base]),
                        "nats_ablated": float(nll[base + 1 + v]),
                        "nats_recon": float(nll[base]),
                        "nats_clean": float(nll[0]),
                        "n_answer_tokens": len(answer),
                    }
                )
    return pd.DataFrame.from_records(records)
