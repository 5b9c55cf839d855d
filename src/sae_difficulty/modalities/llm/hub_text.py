"""SAE training activations from a text dataset of the hub (``llm.sae_activations.source: hub_text``).

The dataset is opened with ``datasets.load_dataset(name, config, split=split)``: an Arrow
table memory-mapped from the datasets cache (offline, that cache must hold what one
online ``load_dataset`` prepared; ``streaming=True`` cannot read offline). Documents are
read in small batches of rows, in the dataset's order, and each goes to ``train`` or
``heldout`` by a hash of its row index (1 in ``HELDOUT_ONE_IN`` held out, the rule of the
bundled corpus' roles). A role's documents are tokenized, joined by EOS and cut into
non-overlapping BOS-led windows of ``context_length``; windows are run through the model
a batch at a time and their residuals (BOS excluded) written in whole chunks until
``tokens`` / ``heldout_tokens`` rows are written. Reading stops there, so a Pile-sized
table costs the rows the budget needs, and memory is one batch of windows per role.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch
import zarr
from tqdm.auto import tqdm

from sae_difficulty.modalities.llm import corpus as llm_corpus
from sae_difficulty.modalities.llm.backbone import Backbone, check_layer
from sae_difficulty.saes.cache import ChunkAlignedWriter
from sae_difficulty.utils.errors import InputError

CHUNK_ROWS = 4096
HELDOUT_SHARE = 0.1
ROWS_PER_READ = 64
HASH_SALT = "sae-hub-text"


def is_heldout_row(name: str, index: int) -> bool:
    """The fixed role of row ``index`` of dataset ``name``: held out for about 1 in 10 rows."""
    return llm_corpus.unit_hash(f"{name}/{index}", HASH_SALT) < HELDOUT_SHARE


def open_text_table(spec: dict[str, Any]):
    """The split as a memory-mapped ``datasets.Dataset`` holding only the text column."""
    import datasets

    name, split, column = spec.get("name"), spec.get("split", "train"), spec.get("text_column", "text")
    if not name:
        raise InputError("llm.sae_activations.hub_text.name: source hub_text needs a hub dataset name, got null")
    try:
        table = datasets.load_dataset(name, spec.get("config"), split=split)
    except (ConnectionError, FileNotFoundError, ValueError) as error:
        first = (str(error).strip().splitlines() or [type(error).__name__])[0]
        raise InputError(
            f"llm.sae_activations.hub_text: cannot load {name}[{split}] ({first[:200]}); offline, warm the datasets cache "
            f"with one online datasets.load_dataset({name!r}, split={split!r})"
        ) from None
    if column not in table.column_names:
        raise InputError(f"llm.sae_activations.hub_text.text_column: {column!r} is not a column of {name}[{split}]; have {table.column_names}")
    return table.select_columns([column])


def text_rows(table, column: str) -> Iterator[tuple[int, str]]:
    """(row index, text) in dataset order, read ``ROWS_PER_READ`` rows at a time (never the whole table)."""
    index = 0
    for batch in table.iter(batch_size=ROWS_PER_READ):
        for text in batch[column]:
            yield index, text or ""
            index += 1


class WindowPacker:
    """Documents joined by EOS and cut into BOS-led windows ``[bos] + context_length - 1 tokens``."""

    def __init__(self, bos_id: int, eos_id: int, context_length: int):
        self.bos_id, self.eos_id, self.step = bos_id, eos_id, context_length - 1
        self.buffer: list[int] = []

    def add(self, token_ids: list[int]) -> list[list[int]]:
        """Append one document; return the windows it completes."""
        self.buffer.extend(token_ids)
        self.buffer.append(self.eos_id)
        windows = []
        while len(self.buffer) >= self.step:
            windows.append([self.bos_id, *self.buffer[: self.step]])
            del self.buffer[: self.step]
        return windows


class RoleWriter:
    """One array of the cache: windows wait for a full batch, then their rows are written until the budget."""

    def __init__(self, backbone: Backbone, layer: int, array: zarr.Array, batch_size: int, progress: tqdm):
        self.backbone, self.layer, self.batch_size, self.progress = backbone, layer, batch_size, progress
        self.writer = ChunkAlignedWriter(array)
        self.budget = int(array.shape[0])
        self.pending: list[list[int]] = []

    @property
    def full(self) -> bool:
        return self.writer.rows_appended >= self.budget

    def add(self, windows: list[list[int]]) -> None:
        for window in windows:
            if self.full:
                return
            self.pending.append(window)
            if len(self.pending) == self.batch_size:
                self.flush()

    @torch.no_grad()
    def flush(self) -> None:
        if not self.pending or self.full:
            self.pending = []
            return
        tokens = torch.tensor(self.pending, dtype=torch.long, device=self.backbone.device)
        resid = self.backbone.model(tokens, stop_at_layer=self.layer + 1)
        rows = resid[:, 1:].float().cpu().numpy().reshape(-1, resid.shape[-1])[: self.budget - self.writer.rows_appended]
        self.writer.append(rows)
        self.progress.update(len(rows))
        self.pending = []


def training_activations(backbone: Backbone, layer: int, out_zarr: str | Path, params: dict[str, Any], seed: int) -> dict[str, Any]:
    """``train`` / ``heldout`` residual rows at ``layer`` from the hub text dataset ``params["hub_text"]``.

    ``params`` (``llm.sae_activations``): ``tokens``, ``heldout_tokens``, ``context_length``,
    ``batch_size``, ``hub_text`` {``name``, ``config``, ``split``, ``text_column``}. ``seed`` is
    unused: the rows are the dataset's order and the roles a hash of the row index.
    """
    del seed
    hook_name = check_layer(backbone, layer)
    spec = dict(params.get("hub_text") or {})
    budgets = {"train": int(params.get("tokens", 200_000)), "heldout": int(params.get("heldout_tokens", 20_000))}
    context_length = int(params.get("context_length", 64))
    batch_size = int(params.get("batch_size", 32))
    if context_length < 2 or context_length > backbone.n_ctx:
        raise InputError(f"llm.sae_activations.context_length={context_length}: expected 2..{backbone.n_ctx} (the model's context)")
    if min(budgets.values()) < 1:
        raise InputError(f"llm.sae_activations: tokens and heldout_tokens must be positive (got {budgets['train']}, {budgets['heldout']})")
    table = open_text_table(spec)
    column = spec.get("text_column", "text")
    group = zarr.open_group(str(out_zarr), mode="w", zarr_format=3)
    group.attrs.update({"hook_name": hook_name, "layer": int(layer), "backbone": backbone.source, "context_length": context_length,
                        "text": f"hub dataset {spec['name']}[{spec.get('split', 'train')}] column {column}"})  # fmt: skip
    eos = backbone.tokenizer.eos_token_id
    eos = backbone.bos_id if eos is None else int(eos)
    progress = tqdm(total=sum(budgets.values()), desc=f"sae activations hub text L{layer}", file=sys.stderr, mininterval=5.0, unit="tok")
    roles = {}
    for name, budget in budgets.items():
        array = group.create_array(name, shape=(budget, backbone.d_model), chunks=(min(CHUNK_ROWS, budget), backbone.d_model),
                                   dtype="float32", compressors=None)  # fmt: skip
        roles[name] = (RoleWriter(backbone, layer, array, batch_size, progress), WindowPacker(backbone.bos_id, eos, context_length))
    documents = {"train": 0, "heldout": 0}
    rows_read = 0
    for index, text in text_rows(table, column):
        rows_read = index + 1
        name = "heldout" if is_heldout_row(spec["name"], index) else "train"
        writer, packer = roles[name]
        if writer.full:
            if all(w.full for w, _ in roles.values()):
                break
            continue
        documents[name] += 1
        writer.add(packer.add(backbone.tokenizer(text, add_special_tokens=False)["input_ids"]))
    for writer, _ in roles.values():
        writer.flush()
        writer.writer.close()
    progress.close()
    for name, (writer, _) in roles.items():
        if not writer.full:
            key = "tokens" if name == "train" else "heldout_tokens"
            raise InputError(
                f"llm.sae_activations.{key}: {spec['name']}[{spec.get('split', 'train')}] gives only {writer.writer.rows_appended} "
                f"{name} tokens of the {writer.budget} asked; lower the budget or use a larger split"
            )
    return {"train_tokens": budgets["train"], "heldout_tokens": budgets["heldout"], "d_model": backbone.d_model, "layer": int(layer),
            "hook_name": hook_name, "hub_text": spec, "rows_read": rows_read, "documents": documents}  # fmt: skip
