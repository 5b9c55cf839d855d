"""The content-addressed artifact store: ``<store>/<stage>/<node_id>/``.

Each node directory holds the stage's files, ``spec.json`` (exactly what was hashed
into the id) and ``manifest.json`` (sha256 and size of every other file, wall time,
library versions), written last. A node is complete only when its manifest is
present (and, when checked, verifies). A node is built in a temporary directory in
the same store and renamed into place, so a killed job never leaves a
complete-looking node, and a finished node is never overwritten: when two writers
race (two Snakemake invocations, or jobs on two cluster nodes sharing the
filesystem), the first rename wins and the second discards its copy.

A temporary directory carries its owner (``.owner.json``: pid, host, start time and a
token) until just before it is published. The writer publishes only if its owner file
is still there, so a directory deleted under a running job (and recreated by the
job's next ``mkdir(parents=True)``) is refused rather than published half-empty; and
``store gc`` removes only temporary directories whose owner is gone. Each stage
declares what a complete node holds (``pipeline.outputs``); the writer checks the
declaration before publishing, the manifest records it and ``verify_node`` re-checks it.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
import platform
import shutil
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from sae_difficulty.pipeline.outputs import Declaration, declared_outputs
from sae_difficulty.utils.errors import StoreError
from sae_difficulty.utils.io import dumps

MANIFEST = "manifest.json"
SPEC = "spec.json"
OWNER = ".owner.json"
TEMP_PREFIX = ".tmp-"
TRASH_PREFIX = ".trash-"
# A writer on another host cannot be asked whether it is alive: after this long it is presumed gone.
DEFAULT_WRITER_BOUND_S = 48 * 3600
_PLACE_ATTEMPTS = 5
REPORTED_LIBRARIES = (
    "numpy", "scipy", "sklearn", "pandas", "pyarrow", "zarr", "torch", "transformers",
    "tokenizers", "transformer_lens", "sae_lens", "chronos", "datasets", "snakemake",
    "sae_difficulty",
)  # fmt: skip


def node_dir(store_root: str | os.PathLike, stage: str, node_id: str) -> Path:
    return Path(store_root) / stage / node_id


def manifest_path(store_root: str | os.PathLike, stage: str, node_id: str) -> Path:
    return node_dir(store_root, stage, node_id) / MANIFEST


def sha256_file(path: Path, block: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(block):
            digest.update(chunk)
    return digest.hexdigest()


def content_files(directory: Path) -> list[Path]:
    """Every file of a node except its manifest (and a writer's owner file), in a stable order."""
    files = []
    for path in sorted(directory.rglob("*")):
        if path.is_file() and not (path.parent == directory and path.name in (MANIFEST, OWNER)):
            files.append(path)
    return files


def library_versions() -> dict[str, str]:
    versions = {"python": platform.python_version()}
    for name in REPORTED_LIBRARIES:
        module = sys.modules.get(name)
        if module is not None:
            versions[name] = str(getattr(module, "__version__", "unknown"))
    return versions


def hardware() -> dict[str, Any]:
    """What the node ran on: CPU count and architecture, and the GPU when torch used one."""
    described: dict[str, Any] = {"machine": platform.machine(), "cpus": os.cpu_count()}
    torch = sys.modules.get("torch")
    if torch is not None and torch.cuda.is_available() and torch.cuda.is_initialized():
        described["gpu"] = torch.cuda.get_device_name()
    return described


def build_manifest(directory: Path, node_id: str, stage: str, wall_time_s: float,
                   declared: Declaration | None = None) -> dict[str, Any]:  # fmt: skip
    files = {
        str(path.relative_to(directory)): {"sha256": sha256_file(path), "size": path.stat().st_size}
        for path in content_files(directory)
    }
    return {
        "node_id": node_id,
        "stage": stage,
        "files": files,
        "declared": (declared or Declaration()).to_dict(),
        "total_size": sum(entry["size"] for entry in files.values()),
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "wall_time_s": round(wall_time_s, 3),
        "host": platform.node(),
        "hardware": hardware(),
        "versions": library_versions(),
    }


def _fsync_dir(directory: Path) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def is_complete(directory: str | os.PathLike) -> bool:
    """A node is complete when its manifest exists (``verify_node`` re-hashes)."""
    return (Path(directory) / MANIFEST).is_file()


def read_manifest(directory: str | os.PathLike) -> dict[str, Any]:
    path = Path(directory) / MANIFEST
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise StoreError(f"{directory}: node is incomplete (no {MANIFEST}); re-run the workflow to rebuild it") from None
    except json.JSONDecodeError as error:
        raise StoreError(f"{path}: manifest is not valid JSON ({error.msg}); the node is corrupt") from None


def node_declaration(directory: Path, manifest: dict[str, Any]) -> Declaration:
    """What the node must hold: as its manifest recorded it, else (older nodes) as its stage declares now."""
    if "declared" in manifest:
        return Declaration.from_dict(manifest["declared"])
    try:
        spec = json.loads((directory / SPEC).read_text())
    except (OSError, json.JSONDecodeError):
        spec = {}
    return declared_outputs(str(manifest.get("stage", directory.parent.name)), spec.get("params"))


def verify_node(directory: str | os.PathLike) -> list[str]:
    """Re-hash a node and check it holds what its stage declares; return the problems (empty = verifies)."""
    directory = Path(directory)
    try:
        manifest = read_manifest(directory)
    except StoreError as error:
        return [str(error)]
    problems = [f"{directory}: declared output {item} is missing; the node is incomplete"
                for item in node_declaration(directory, manifest).missing(directory)]  # fmt: skip
    listed = manifest.get("files", {})
    present = {str(p.relative_to(directory)) for p in content_files(directory)}
    for name in sorted(set(listed) - present):
        problems.append(f"{directory / name}: listed in the manifest but missing")
    for name in sorted(present - set(listed)):
        problems.append(f"{directory / name}: not listed in the manifest")
    for name in sorted(set(listed) & present):
        path = directory / name
        entry = listed[name]
        if path.stat().st_size != entry["size"]:
            problems.append(f"{path}: size {path.stat().st_size} != manifest {entry['size']}")
        elif sha256_file(path) != entry["sha256"]:
            problems.append(f"{path}: sha256 does not match the manifest")
    return problems


def _process_start_ticks(pid: int) -> int | None:
    """When ``pid`` started, in clock ticks since boot (Linux); None when unknown or not running."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # Field 22 (starttime); fields are counted after the parenthesised command name.
    try:
        return int(stat.rsplit(")", 1)[1].split()[19])
    except (IndexError, ValueError):
        return None


def owner_record(token: str) -> dict[str, Any]:
    """Who is writing a temporary directory: this process, on this host, since now."""
    pid = os.getpid()
    return {"pid": pid, "host": platform.node(), "started": time.time(), "start_ticks": _process_start_ticks(pid), "token": token}


def read_owner(temp_dir: Path) -> dict[str, Any] | None:
    try:
        owner = json.loads((Path(temp_dir) / OWNER).read_text())
    except (OSError, json.JSONDecodeError):
        return None
    return owner if isinstance(owner, dict) else None


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # it exists, owned by someone else
    except OSError:
        return False
    return True


def owner_alive(owner: dict[str, Any], bound_s: float = DEFAULT_WRITER_BOUND_S, now: float | None = None) -> bool:
    """Whether the writer that owns a temporary directory may still be running.

    On this host: its pid runs and (where /proc tells) started when the owner file says,
    so a recycled pid does not count. On another host the pid cannot be asked: the
    writer counts as alive until ``bound_s`` after it started.
    """
    now = time.time() if now is None else now
    try:
        pid, host, started = int(owner["pid"]), str(owner["host"]), float(owner["started"])
    except (KeyError, TypeError, ValueError):
        return False
    if host != platform.node():
        return now - started < bound_s
    if not pid_alive(pid):
        return False
    recorded, current = owner.get("start_ticks"), _process_start_ticks(pid)
    return recorded is None or current is None or recorded == current


@dataclass
class NodeWriter:
    """Build a node in a temporary directory and rename it into place when done.

    Use as a context manager; files go under ``writer.path``. On success the node is
    checked against its stage's declaration (``pipeline.outputs``; derived from the
    spec's ``stage`` and ``params`` unless given), the spec and the manifest are
    written (the manifest last) and the directory is renamed to ``final_dir``. On
    error, or when the temporary directory was removed or replaced while the node was
    being built, the temporary directory is removed and the store is unchanged.
    """

    final_dir: Path
    spec: dict[str, Any]
    declaration: Declaration | None = None

    def __post_init__(self) -> None:
        self.final_dir = Path(self.final_dir)
        self.node_id = self.final_dir.name
        self.stage = self.final_dir.parent.name
        self.token = uuid.uuid4().hex
        self.path = self.final_dir.parent / f"{TEMP_PREFIX}{self.node_id}-{self.token[:8]}"
        if self.declaration is None:
            self.declaration = declared_outputs(str(self.spec.get("stage", self.stage)), self.spec.get("params"))

    def __enter__(self) -> NodeWriter:
        self.path.mkdir(parents=True)
        (self.path / OWNER).write_text(dumps(owner_record(self.token)))
        self._started = time.perf_counter()
        return self

    def __exit__(self, exc_type, exc, tb) -> bool:
        if exc_type is not None:
            shutil.rmtree(self.path, ignore_errors=True)
            return False
        try:
            self._finalize()
        except BaseException:
            shutil.rmtree(self.path, ignore_errors=True)
            raise
        return False

    def _check_still_ours(self) -> None:
        owner = read_owner(self.path)
        if owner is None or owner.get("token") != self.token:
            raise StoreError(
                f"{self.path}: the node's temporary directory was removed or replaced while it was being built "
                f"(was `sae-difficulty store gc` run during the job?); the node was not published, re-run to rebuild it"
            )

    def _finalize(self) -> None:
        self._check_still_ours()
        missing = self.declaration.missing(self.path)
        if missing:
            raise StoreError(f"{self.stage} node {self.node_id}: the build did not write {', '.join(missing)}; the node was not published")
        (self.path / SPEC).write_text(dumps(self.spec))
        manifest = build_manifest(self.path, self.node_id, self.stage, time.perf_counter() - self._started, self.declaration)
        manifest_tmp = self.path / f".{MANIFEST}.partial"
        manifest_tmp.write_text(dumps(manifest))
        self._check_still_ours()
        os.replace(manifest_tmp, self.path / MANIFEST)
        # The owner file goes last: removing it updates the directory's mtime, which keeps
        # `gc` off an ownerless temporary directory for the moment until the rename.
        (self.path / OWNER).unlink()
        _fsync_dir(self.path)
        self._move_into_place()

    def _move_into_place(self) -> None:
        """Rename the finished temporary directory to ``final_dir``; the first writer wins.

        rename(2) replaces a missing or EMPTY directory atomically (Snakemake creates
        the output's parent before the job runs) and fails on a non-empty one, so two
        writers racing for the same node cannot both succeed and a complete node is
        never moved or deleted: the loser sees the winner's manifest and discards its
        own copy (content addressing says both are the same artifact). A non-empty,
        incomplete directory (left by a writer that did not use this class) is moved
        aside, unless it turns out to be complete by the time it is moved, in which
        case it is put back.
        """
        final = self.final_dir
        for _ in range(_PLACE_ATTEMPTS):
            try:
                os.replace(self.path, final)
            except OSError as error:
                if error.errno not in (errno.ENOTEMPTY, errno.EEXIST):
                    raise
            else:
                _fsync_dir(final.parent)
                return
            if is_complete(final):
                shutil.rmtree(self.path, ignore_errors=True)
                return
            self._move_aside_leftover(final)
        raise StoreError(f"{final}: could not move the new node into place ({_PLACE_ATTEMPTS} attempts; another process keeps writing into it)")

    def _move_aside_leftover(self, final: Path) -> None:
        trash = final.parent / f"{TRASH_PREFIX}{self.node_id}-{uuid.uuid4().hex[:8]}"
        try:
            os.replace(final, trash)
        except FileNotFoundError:
            return  # another writer moved it first
        except OSError as error:
            if error.errno in (errno.ENOTEMPTY, errno.EEXIST):
                return
            raise
        if is_complete(trash):
            # A competing writer's complete node landed between the check and the move:
            # put it back. Should a third copy have taken its place meanwhile, leave it
            # as trash rather than delete a node a reader may hold (`store gc` lists it).
            with contextlib.suppress(OSError):
                os.replace(trash, final)
            return
        shutil.rmtree(trash, ignore_errors=True)


@dataclass
class StoredNode:
    stage: str
    node_id: str
    path: Path
    complete: bool

    @property
    def size(self) -> int:
        if self.complete:
            try:
                return int(read_manifest(self.path).get("total_size", 0))
            except StoreError:
                pass
        return sum(p.stat().st_size for p in self.path.rglob("*") if p.is_file())

    @property
    def created(self) -> str:
        if self.complete:
            try:
                return str(read_manifest(self.path).get("created", ""))
            except StoreError:
                return ""
        return ""


def iter_store(store_root: str | os.PathLike) -> Iterator[StoredNode]:
    """Every node directory in the store (complete or not), skipping temp/trash dirs."""
    root = Path(store_root)
    if not root.is_dir():
        return
    for stage_dir in sorted(p for p in root.iterdir() if p.is_dir()):
        for directory in sorted(p for p in stage_dir.iterdir() if p.is_dir()):
            if directory.name.startswith((TEMP_PREFIX, TRASH_PREFIX)):
                continue
            yield StoredNode(stage_dir.name, directory.name, directory, is_complete(directory))


def leftovers(store_root: str | os.PathLike) -> list[Path]:
    """Temporary and trash directories left by killed jobs (safe to delete when no job runs)."""
    root = Path(store_root)
    if not root.is_dir():
        return []
    return sorted(
        d for stage in root.iterdir() if stage.is_dir() for d in stage.iterdir()
        if d.is_dir() and d.name.startswith((TEMP_PREFIX, TRASH_PREFIX))
    )  # fmt: skip


def remove_node(path: Path) -> None:
    """Delete a node atomically: rename it to a trash name first, then remove it."""
    trash = path.parent / f"{TRASH_PREFIX}{path.name}-{uuid.uuid4().hex[:8]}"
    os.replace(path, trash)
    shutil.rmtree(trash)


# A temporary directory without an owner file is either a writer's last instant before
# publishing or a leftover of an older writer: it counts as alive while this recent.
OWNERLESS_GRACE_S = 3600


def age_s(path: Path, now: float | None = None) -> float:
    """Seconds since a node was completed (its manifest) or, if incomplete, last changed."""
    now = time.time() if now is None else now
    manifest = Path(path) / MANIFEST
    try:
        return now - (manifest if manifest.is_file() else Path(path)).stat().st_mtime
    except OSError:
        return float("inf")


def temp_dir_alive(path: Path, bound_s: float = DEFAULT_WRITER_BOUND_S, now: float | None = None) -> bool:
    """Whether a ``.tmp-`` directory may still belong to a running writer."""
    owner = read_owner(path)
    if owner is None:
        return age_s(path, now) < OWNERLESS_GRACE_S
    return owner_alive(owner, bound_s, now)


def live_writers(store_root: str | os.PathLike, bound_s: float = DEFAULT_WRITER_BOUND_S) -> list[Path]:
    """Temporary directories whose writer may still be running."""
    return [path for path in leftovers(store_root) if path.name.startswith(TEMP_PREFIX) and temp_dir_alive(path, bound_s)]


def abandoned_leftovers(store_root: str | os.PathLike, bound_s: float = DEFAULT_WRITER_BOUND_S) -> list[Path]:
    """Trash directories and temporary directories whose writer is gone (safe to delete)."""
    return [path for path in leftovers(store_root)
            if path.name.startswith(TRASH_PREFIX) or not temp_dir_alive(path, bound_s)]  # fmt: skip


def snakemake_locks(workdir: str | os.PathLike = ".") -> list[Path]:
    """Lock files of a Snakemake run in ``workdir`` (present while a run is active, or left by a killed one)."""
    locks = Path(workdir) / ".snakemake" / "locks"
    return sorted(locks.iterdir()) if locks.is_dir() else []
