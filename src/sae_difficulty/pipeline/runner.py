"""Glue between a Snakemake ``script:`` and a stage's ``build`` function.

Every rule script is three lines: import ``run_node`` and the stage, call
``run_node(snakemake, stage.build)``. This module sends stderr (tqdm progress,
warnings) and logging to the rule's log, pins BLAS threads, builds the node in a
temporary directory of the store and turns any failure into one line on the console
and in the log (the log also gets the traceback; the console gets it too when
``SAE_DIFFICULTY_VERBOSE=1``) and a non-zero exit. A full disk names the store and
the space left on it.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import shutil
import sys
import traceback
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sae_difficulty.pipeline.store import NodeWriter
from sae_difficulty.utils.errors import InputError, StoreError
from sae_difficulty.utils.numerics import pinned_blas

log = logging.getLogger("sae_difficulty")
VERBOSE_ENV = "SAE_DIFFICULTY_VERBOSE"


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
    """Print one line to the console and append it to the log, then exit non-zero."""
    line = " ".join(message.split())
    print(f"error: {line}", file=sys.__stderr__)
    if log_path:
        # The log's device may be the full one: the console line must not depend on it.
        with contextlib.suppress(OSError), open(log_path, "a") as handle:
            handle.write(f"error: {line}\n")
    raise SystemExit(1)


def verbose() -> bool:
    return os.environ.get(VERBOSE_ENV, "").strip().lower() not in ("", "0", "false", "no")


def _free_bytes(path: Path) -> int | None:
    for candidate in (path, *path.parents):
        if candidate.exists():
            try:
                return shutil.disk_usage(candidate).free
            except OSError:
                return None
    return None


def describe_failure(error: BaseException, store: Path, log_path: str | None) -> str:
    """One line for a failed build: the error itself for known kinds, else its type and message."""
    if isinstance(error, (InputError, StoreError)):
        return str(error)
    if isinstance(error, OSError) and error.errno == errno.ENOSPC:
        free = _free_bytes(store)
        left = f"{free} bytes left" if free is not None else "free space unknown"
        where = f" writing {error.filename}" if error.filename else ""
        return f"no space left on the device of store {store} ({left}){where}; free space or point `store` elsewhere, then re-run"
    where = f" (traceback in {log_path})" if log_path else ""
    return f"{type(error).__name__}: {error}{where}"


@contextlib.contextmanager
def _traceback_to_log() -> Iterator[None]:
    """Write an unexpected exception's traceback to the current stderr (the job's log)."""
    try:
        yield
    except (InputError, StoreError):
        raise
    except Exception:
        traceback.print_exc(file=sys.stderr)
        raise


def run_node(snakemake: Any, build: Callable[[NodeContext], None], note: str = "") -> None:
    """Build the store node that is ``snakemake.output.manifest``'s directory (``note``: where, for the log)."""
    log_path = snakemake.log[0] if len(snakemake.log) else None
    final_dir = Path(snakemake.output.manifest).parent
    spec = snakemake.params.spec
    threads = int(snakemake.config.get("blas_threads", 1))
    try:
        with logging_to(log_path), pinned_blas(threads), _traceback_to_log():
            log.info("building %s/%s%s", spec["stage"], final_dir.name, f" ({note})" if note else "")
            with NodeWriter(final_dir, spec) as writer:
                context = NodeContext(spec, _parent_dirs(snakemake.input), writer.path, dict(snakemake.config), final_dir.name)
                build(context)
            log.info("done %s/%s", spec["stage"], final_dir.name)
    except Exception as error:
        if verbose():
            traceback.print_exc(file=sys.__stderr__)
        fail(f"{spec['stage']} node {final_dir.name}: {describe_failure(error, final_dir.parent.parent, log_path)}", log_path)


def run_view(snakemake: Any, build: Callable[[Any], None]) -> None:
    """Run a human-facing view rule (outputs outside the store) with the same logging."""
    log_path = snakemake.log[0] if len(snakemake.log) else None
    try:
        with logging_to(log_path), _traceback_to_log():
            build(snakemake)
    except Exception as error:
        if verbose():
            traceback.print_exc(file=sys.__stderr__)
        fail(describe_failure(error, Path(snakemake.config.get("store", ".")), log_path), log_path)
