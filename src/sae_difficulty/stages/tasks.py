"""Stage `tasks`: task records in the dataset's own schema plus the split table."""

from __future__ import annotations

import hashlib
import shutil
import urllib.request
from pathlib import Path

from sae_difficulty.modalities import get_modality
from sae_difficulty.pipeline.runner import NodeContext
from sae_difficulty.utils.errors import InputError
from sae_difficulty.utils.io import write_json


def check_sha256(path: str | Path, expected: str | None) -> None:
    """Refuse a data file whose checksum differs from the configured one."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"data file {path} does not exist; expected the CSV named by the dataset's `path` key")
    if expected is None:
        return
    actual = hashlib.sha256(path.read_bytes()).hexdigest()
    if actual != expected:
        raise InputError(f"{path}: sha256 {actual[:12]}... != expected {expected[:12]}... (set `sha256: null` to accept a modified file)")


def build(ctx: NodeContext) -> None:
    params = dict(ctx.params)
    modality_name = params.pop("modality")
    dataset = params.pop("dataset")
    seed = params.pop("seed")
    if modality_name == "tsfm":
        check_sha256(params["path"], params.get("sha256"))
    summary = get_modality(modality_name).build_tasks(dataset, params, ctx.out, seed)
    write_json(ctx.out / "tasks.json", {"modality": modality_name, "dataset": dataset, **(summary or {})})


def download_checked(snakemake) -> None:
    """Download ``params.url`` to the output and verify ``params.sha256`` (view rule)."""
    target = Path(snakemake.output[0])
    partial = target.with_suffix(".partial")
    target.parent.mkdir(parents=True, exist_ok=True)
    with urllib.request.urlopen(snakemake.params.url, timeout=60) as response, open(partial, "wb") as handle:
        shutil.copyfileobj(response, handle)
    try:
        check_sha256(partial, snakemake.params.sha256)
    except InputError:
        partial.unlink(missing_ok=True)
        raise
    partial.replace(target)
