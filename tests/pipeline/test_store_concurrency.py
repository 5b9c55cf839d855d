"""Concurrent writers of the same store node, as on a cluster with a shared filesystem.

Two Snakemake runs that share a prefix (or a run restarted while its old jobs still
run) can build the same node at the same time from different processes or machines.
The store promises: every writer finishes without an error, exactly one complete node
results and verifies, nothing is left behind, and a node, once complete, is never
replaced or removed (a downstream job may already be reading it).

Each writer here also writes its own id into the node, so that the tests can tell
whether the complete node that was there first was later swapped for another copy.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import queue
import shutil
import time
from pathlib import Path

import pytest

from sae_difficulty.pipeline.store import (
    NodeWriter,
    is_complete,
    leftovers,
    verify_node,
)

STAGE = "stage"
N_WRITERS = 8
N_ROUNDS = 150
PAYLOAD = bytes(range(256)) * 256  # 64 KiB, identical for every writer (content addressing)


def _write_copy(final: Path, writer: str) -> None:
    with NodeWriter(final, {"stage": STAGE, "id": final.name}) as node:
        (node.path / "data.bin").write_bytes(PAYLOAD)
        (node.path / "writer.txt").write_text(writer)


def _rival_finishes_before(final: Path, nth_rename: int, monkeypatch) -> list[int]:
    """Make a rival writer complete ``final`` just before our nth rename touching it."""
    real_replace = os.replace
    renames = [0]

    def replace(src, dst):
        if final in (Path(src), Path(dst)):
            renames[0] += 1
            if renames[0] == nth_rename:
                monkeypatch.setattr(os, "replace", real_replace)
                _write_copy(final, "rival")
        return real_replace(src, dst)

    monkeypatch.setattr(os, "replace", replace)
    return renames


def test_rival_completing_just_before_our_rename_keeps_its_node(tmp_path, monkeypatch):
    """The worst interleaving, made deterministic: whatever a writer checks first, a rival
    finishes the same node just before the writer's first rename that touches it."""
    final = tmp_path / STAGE / "00000000abcd"
    final.mkdir(parents=True)  # Snakemake creates the output's parent before the job runs
    renames = _rival_finishes_before(final, 1, monkeypatch)
    _write_copy(final, "late")
    monkeypatch.undo()

    assert renames[0] >= 1, "the writer never renamed anything onto the node"
    assert (final / "writer.txt").read_text() == "rival", "the late writer replaced a complete node"
    assert verify_node(final) == []
    assert leftovers(tmp_path) == []


def test_rival_landing_while_we_clear_a_leftover_keeps_its_node(tmp_path, monkeypatch):
    """A half-written directory is in the way; a rival clears it and finishes just before
    we move what we believe is still that leftover."""
    final = tmp_path / STAGE / "00000000abcd"
    final.mkdir(parents=True)
    (final / "junk").write_text("from a writer that did not use NodeWriter")
    renames = _rival_finishes_before(final, 2, monkeypatch)
    _write_copy(final, "late")
    monkeypatch.undo()

    assert renames[0] >= 2, "the writer never tried to clear the leftover"
    assert (final / "writer.txt").read_text() == "rival", "the late writer replaced a complete node"
    assert not (final / "junk").exists() and verify_node(final) == []
    assert leftovers(tmp_path) == []


def _node_ids(n: int) -> list[str]:
    return [f"{i:012x}" for i in range(n)]


def _writer(store: str, node_ids: list[str], writer_id: int, barrier, results) -> None:
    """Build every node in turn, starting each round at the same moment as the others."""
    for index, nid in enumerate(node_ids):
        final = Path(store) / STAGE / nid
        if index % 2 == 0:
            # Snakemake creates the output's parent directory before the job runs.
            final.mkdir(parents=True, exist_ok=True)
        barrier.wait(timeout=60)
        try:
            _write_copy(final, str(writer_id))
            results.put((nid, writer_id, None))
        except BaseException as error:  # noqa: BLE001 - the test reports any failure
            results.put((nid, writer_id, repr(error)))


def _watcher(store: str, node_ids: list[str], stop, observations) -> None:
    """Record which writer's copy each complete node holds, every time it is looked at."""
    seen: dict[str, set[str]] = {nid: set() for nid in node_ids}
    vanished: dict[str, int] = {nid: 0 for nid in node_ids}
    while not stop.is_set():
        for nid in node_ids:
            final = Path(store) / STAGE / nid
            was_complete = bool(seen[nid])
            try:
                if is_complete(final):
                    seen[nid].add((final / "writer.txt").read_text())
                elif was_complete:
                    vanished[nid] += 1
            except FileNotFoundError:
                vanished[nid] += 1
    observations.put(({nid: sorted(ids) for nid, ids in seen.items()}, vanished))


def _collect(results, expected: int, timeout_s: float) -> list[tuple[str, int, str | None]]:
    collected = []
    deadline = time.monotonic() + timeout_s
    while len(collected) < expected:
        try:
            collected.append(results.get(timeout=max(0.1, deadline - time.monotonic())))
        except queue.Empty:
            pytest.fail(f"only {len(collected)} of {expected} writes reported within {timeout_s:.0f} s")
    return collected


@pytest.mark.slow
def test_concurrent_writers_leave_exactly_one_complete_node_that_never_changes(tmp_path):
    store = tmp_path / "store"
    (store / STAGE).mkdir(parents=True)
    node_ids = _node_ids(N_ROUNDS)
    context = multiprocessing.get_context("spawn")  # no state inherited from the test process
    barrier = context.Barrier(N_WRITERS)
    results, observations, stop = context.Queue(), context.Queue(), context.Event()
    watcher = context.Process(target=_watcher, args=(str(store), node_ids, stop, observations))
    writers = [
        context.Process(target=_writer, args=(str(store), node_ids, writer_id, barrier, results))
        for writer_id in range(N_WRITERS)
    ]
    watcher.start()
    for process in writers:
        process.start()
    try:
        reports = _collect(results, N_WRITERS * N_ROUNDS, timeout_s=120)
        stop.set()
        seen, vanished = observations.get(timeout=60)
    finally:
        stop.set()
        for process in [*writers, watcher]:
            process.join(timeout=30)
            if process.is_alive():
                process.kill()

    errors = [report for report in reports if report[2] is not None]
    assert errors == [], f"writers failed: {errors[:5]}"
    for nid in node_ids:
        final = store / STAGE / nid
        assert is_complete(final) and verify_node(final) == [], nid
        winner = (final / "writer.txt").read_text()
        assert seen[nid] in ([], [winner]), f"node {nid} was replaced after it was complete: copies {seen[nid]}"
        assert vanished[nid] == 0, f"node {nid} disappeared {vanished[nid]} times after it was complete"
    assert leftovers(store) == [], "temporary or trash directories were left behind"
    assert sorted(p.name for p in (store / STAGE).iterdir()) == node_ids


# --- `store gc` during a run ------------------------------------------------------------
# The fake node: gc deleted a running extract job's temporary directory, the job's
# next write recreated it (zarr and write_json create parent directories), and the writer
# published it without the `tokens` and `offsets` arrays it had written before.

EXTRACT_SPEC = {"stage": "extract", "version": "2", "params": {"layer": 1}, "parents": {}}


def _first_half(out: Path) -> None:
    import numpy as np
    import zarr

    group = zarr.open_group(str(out / "activations.zarr"), mode="w", zarr_format=3)
    group.create_array("tokens", data=np.ones((12, 4), dtype=np.float32))
    group.create_array("offsets", data=np.array([0, 5, 12], dtype=np.int64))


def _second_half(out: Path) -> None:
    import numpy as np
    import pandas as pd
    import zarr

    from sae_difficulty.utils.io import write_json, write_parquet

    group = zarr.open_group(str(out / "activations.zarr"), mode="a", zarr_format=3)
    group.create_array("last", data=np.ones((2, 4), dtype=np.float32))
    group.create_array("mean", data=np.ones((2, 4), dtype=np.float32))
    group.create_array("max", data=np.ones((2, 4), dtype=np.float32))
    write_parquet(out / "examples.parquet", pd.DataFrame({"id": ["a", "b"]}))
    write_json(out / "extract.json", {"layer": 1})


def _gc(tmp_path: Path, *extra: str) -> int:
    from sae_difficulty.cli import main as cli

    overlay = tmp_path / "store.yaml"
    overlay.write_text(f"store: {tmp_path / 'store'}\n")
    return cli(["store", "gc", "--keep-config", str(overlay), "--yes", "--force", *extra])


def _ended_pid() -> int:
    process = multiprocessing.get_context("spawn").Process(target=time.sleep, args=(0,))
    process.start()
    process.join()
    return process.pid


def test_gc_during_a_write_neither_deletes_nor_fakes_the_node(tmp_path, monkeypatch, capsys):
    from sae_difficulty.pipeline.store import OWNER
    from sae_difficulty.utils.errors import StoreError

    monkeypatch.chdir(tmp_path)
    final = tmp_path / "store" / "extract" / "0000000000ee"

    # A live writer paused mid-node: gc refuses, and the writer finishes a complete node.
    with NodeWriter(final, EXTRACT_SPEC) as writer:
        _first_half(writer.path)
        assert _gc(tmp_path) == 2
        assert "node writer(s) still running" in capsys.readouterr().err
        _second_half(writer.path)
    assert verify_node(final) == []
    shutil.rmtree(final)

    # A writer whose owner looks gone (here: its owner file names an ended process) loses
    # its directory to gc; resumed, it must refuse to publish what its writes recreate.
    with pytest.raises(StoreError, match="removed or replaced while it was being built"):
        with NodeWriter(final, EXTRACT_SPEC) as writer:
            _first_half(writer.path)
            owner = json.loads((writer.path / OWNER).read_text())
            (writer.path / OWNER).write_text(json.dumps({**owner, "pid": _ended_pid(), "start_ticks": None}))
            assert _gc(tmp_path) == 0
            assert not writer.path.exists(), "gc kept the abandoned temporary directory"
            _second_half(writer.path)  # recreates the directory, without tokens/offsets
    assert not final.exists(), "a node missing arrays was published"
    assert leftovers(tmp_path / "store") == []

    # The rerun rebuilds it, complete.
    with NodeWriter(final, EXTRACT_SPEC) as writer:
        _first_half(writer.path)
        _second_half(writer.path)
    assert verify_node(final) == []
    assert sorted(p.name for p in (final / "activations.zarr").iterdir() if p.is_dir()) == ["last", "max", "mean", "offsets", "tokens"]
