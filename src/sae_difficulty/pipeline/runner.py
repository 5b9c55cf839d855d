"""Glue between a Snakemake ``script:`` and a stage's ``build`` function.

Every rule script is three lines: import ``run_node`` and the stage, call
``run_node(snakemake, stage.build)``. This module sends stderr (tqdm progress,
warnings) and logging to the rule's log, pins BLAS threads, builds the node in a
temporary directory of the store and turns an ``InputError`` into one line on
stderr and a non-zero exit.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sae_difficulty.pipeline.store import NodeWriter
from sae_difficulty.utils.errors import InputError, StoreError
from sae_difficulty.utils.numerics import pinned_blas

log = logging.getLogger("sae_difficulty")


@dataclass
class NodeContext:
    """What a stage's ``build`` sees: its spec, its parents' directories and where to write."""

    spec: dict[str, Any]
    parents: dict[str, Path]
    out: Path
    config: dict[str, Any] = field(default_factory=dict)
    node_id: str = ""

    @property
    def params(self) -> dict[str, Any]:
        return self.spec["params"]

    def parent(self, role: str) -> Path:
        try:
            return self.parents[role]
        except KeyError:
            raise InputError(f"node {self.node_id}: missing upstream input {role!r}; have {sorted(self.parents)}") from None

    def parents_with_prefix(self, prefix: str) -> dict[str, Path]:
        return {role: path for role, path in sorted(self.parents.items()) if role.startswith(prefix)}


@contextlib.contextmanager
def logging_to(path: str | os.PathLike | None) -> Iterator[None]:
    """Send stderr and the ``sae_difficulty`` logger to ``path`` (the rule's log)."""
    if path is None:
        yield
        return
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a", buffering=1) as handle:
        handler = logging.StreamHandler(handle)
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        root = logging.getLogger()
        root.addHandler(handler)
        root.setLevel(logging.INFO)
        old_stderr = sys.stderr
        sys.stderr = handle
        try:
            yield
        finally:
            sys.stderr = old_stderr
            root.removeHandler(handler)


def _parent_dirs(inputs: Any) -> dict[str, Path]:
    return {role: Path(str(value)).parent for role, value in dict(inputs.items()).items() if str(value).endswith("manifest.json")}


def fail(message: str, log_path: str | None = None) -> None:
    line = " ".join(message.split())
    print(f"error: {line}", file=sys.__stderr__)
    if log_path:
        with open(log_path, "a") as handle:
            handle.write(f"error: {line}\n")
    raise SystemExit(1)


def run_node(snakemake: Any, build: Callable[[NodeContext], None]) -> None:
    """Build the store node that is ``snakemake.output.manifest``'s directory."""
    log_path = snakemake.log[0] if len(snakemake.log) else None
    final_dir = Path(snakemake.output.manifest).parent
    spec = snakemake.params.spec
    threads = int(snakemake.config.get("blas_threads", 1))
    try:
        with logging_to(log_path), pinned_blas(threads):
            log.info("building %s/%s", spec["stage"], final_dir.name)
            with NodeWriter(final_dir, spec) as writer:
                context = NodeContext(spec, _parent_dirs(snakemake.input), writer.path, dict(snakemake.config), final_dir.name)
                build(context)
            log.info("done %s/%s", spec["stage"], final_dir.name)
    except (InputError, StoreError) as error:
        fail(f"{spec['stage']} node {final_dir.name}: {error}", log_path)


def run_view(snakemake: Any, build: Callable[[Any], None]) -> None:
    """Run a human-facing view rule (outputs outside the store) with the same logging."""
    log_path = snakemake.log[0] if len(snakemake.log) else None
    try:
        with logging_to(log_path):
            build(snakemake)
    except (InputError, StoreError) as error:
        fail(str(error), log_path)
