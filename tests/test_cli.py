"""The CLI resolves a run's config as Snakemake does, and refuses what it cannot do safely.

- a run with an overlay (config/ci.yaml over config/config.yaml, as `snakemake --configfile`
  layers it): `status` with the same overlay reports every node done, `gc` keeps them all;
- `gc --yes` refuses while a Snakemake lock or a node writer is live;
- bad inputs (a schema or a directory as a config, a missing store, an unknown node id)
  are one-line errors with a non-zero exit.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from conftest import REPO

from sae_difficulty.cli import main as cli
from sae_difficulty.pipeline.config import load_config, resolve_config
from sae_difficulty.pipeline.outputs import Declaration
from sae_difficulty.pipeline.store import OWNER, NodeWriter, leftovers
from sae_difficulty.pipeline.study import build_plan


def write_node(store: Path, stage: str, nid: str) -> Path:
    final = store / stage / nid
    with NodeWriter(final, {"stage": stage, "id": nid}, Declaration()) as writer:
        (writer.path / "data.bin").write_bytes(nid.encode())
    return final


def store_overlay(tmp_path: Path, name: str = "store.yaml") -> Path:
    path = tmp_path / name
    path.write_text(yaml.safe_dump({"store": str(tmp_path / "store")}))
    return path


def test_status_and_gc_with_the_runs_overlay_see_every_node_of_the_run(tmp_path, capsys, monkeypatch):
    """The issue's data loss: the run used ci.yaml layered over config.yaml, the CLI read ci.yaml alone."""
    monkeypatch.chdir(REPO)
    overlays = [str(REPO / "config" / "ci.yaml"), str(store_overlay(tmp_path))]
    plan = build_plan(resolve_config(overlays))  # what `snakemake --configfile config/ci.yaml store.yaml` builds
    alone = build_plan(load_config(REPO / "config" / "ci.yaml"))
    assert set(alone.nodes) != set(plan.nodes), "ci.yaml alone must reach other nodes, or this test checks nothing"
    store = tmp_path / "store"
    for node in plan.nodes.values():  # parents first, as the run wrote them
        write_node(store, node.stage, node.id)

    capsys.readouterr()
    assert cli(["status", "--summary", "--configfile", *overlays]) == 0
    summary = capsys.readouterr().out.strip().splitlines()[-1]
    assert summary.startswith(f"{len(plan.nodes)} done (")

    assert cli(["store", "gc", "--keep-config", *overlays, "--yes", "--force"]) == 0
    assert "0 nodes deleted" in capsys.readouterr().out
    assert all((store / node.stage / node.id / "manifest.json").is_file() for node in plan.nodes.values())

    assert cli(["store", "ls", "--configfile", *overlays]) == 0
    listing = capsys.readouterr().out
    assert f"{plan.synthesis.id}" in listing and "ci.yaml+store.yaml" in listing


def test_gc_keeps_the_union_of_several_runs(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)  # no config/ here: the project's config/config.yaml is the base
    overlay = store_overlay(tmp_path)
    other = tmp_path / "other.yaml"
    other.write_text(yaml.safe_dump({"sae": {"k": 4}}))
    first = build_plan(resolve_config([overlay]))
    second = build_plan(resolve_config([overlay, other]))
    only_second = set(second.nodes) - set(first.nodes)
    assert only_second
    for node in [*first.nodes.values(), *second.nodes.values()]:
        if not (tmp_path / "store" / node.stage / node.id).exists():
            write_node(tmp_path / "store", node.stage, node.id)
    assert cli(["store", "gc", "--keep-config", str(overlay), "--keep-config", str(overlay), str(other), "--yes", "--force"]) == 0
    assert "0 nodes deleted" in capsys.readouterr().out
    assert cli(["store", "gc", "--keep-config", str(overlay), "--yes", "--force"]) == 0
    assert f"{len(only_second)} nodes deleted" in capsys.readouterr().out


def test_gc_refuses_to_delete_while_a_snakemake_lock_is_held(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    overlay = store_overlay(tmp_path)
    doomed = write_node(tmp_path / "store", "stage", "0123456789ab")
    locks = tmp_path / ".snakemake" / "locks"
    locks.mkdir(parents=True)
    (locks / "0.input.lock").write_text("")
    assert cli(["store", "gc", "--keep-config", str(overlay), "--yes", "--force"]) == 2
    err = capsys.readouterr().err
    assert "refusing to delete: a Snakemake run holds 1 lock(s)" in err and len(err.strip().splitlines()) == 1
    assert doomed.exists()
    (locks / "0.input.lock").unlink()
    assert cli(["store", "gc", "--keep-config", str(overlay), "--yes", "--force"]) == 0
    assert not doomed.exists()


def _dead_pid() -> int:
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


def test_gc_refuses_while_a_writer_runs_and_removes_only_abandoned_temp_dirs(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    overlay = store_overlay(tmp_path)
    store = tmp_path / "store"
    with NodeWriter(store / "stage" / "00000000aaaa", {"stage": "stage"}, Declaration()) as running:
        (running.path / "half.bin").write_bytes(b"half")
        assert cli(["store", "gc", "--keep-config", str(overlay), "--yes", "--force"]) == 2
        assert "node writer(s) still running" in capsys.readouterr().err
        assert running.path.is_dir()
        # The same writer's directory, but its owner recorded as a process that has ended.
        abandoned = NodeWriter(store / "stage" / "00000000bbbb", {"stage": "stage"}, Declaration())
        abandoned.__enter__()
        owner = json.loads((abandoned.path / OWNER).read_text())
        (abandoned.path / OWNER).write_text(json.dumps({**owner, "pid": _dead_pid(), "start_ticks": None}))
        assert cli(["store", "gc", "--keep-config", str(overlay)]) == 0  # a dry run still lists
        out = capsys.readouterr().out
        assert "note: --yes would refuse" in out and f"would delete leftover {abandoned.path}" in out
        assert f"leftover {running.path}" not in out
    assert cli(["store", "gc", "--keep-config", str(overlay), "--yes", "--force"]) == 0
    assert not abandoned.path.exists() and leftovers(store) == []


def test_stale_temp_dir_without_owner_is_removed_only_when_old(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    overlay = store_overlay(tmp_path)
    legacy = tmp_path / "store" / "stage" / ".tmp-00000000cccc-1234abcd"
    legacy.mkdir(parents=True)
    assert cli(["store", "gc", "--keep-config", str(overlay), "--yes"]) == 2  # fresh: may be a writer's last instant
    old = legacy.stat().st_mtime - 2 * 3600
    os.utime(legacy, (old, old))
    assert cli(["store", "gc", "--keep-config", str(overlay), "--yes"]) == 0
    assert not legacy.exists()


@pytest.mark.parametrize(
    "argv, fragment",
    [
        (["status", "--configfile", "config/schema.yaml"], "config/schema.yaml is a JSON schema"),
        (["status", "--config", "config"], "config file config is a directory"),
        (["store", "gc", "--keep-config", "config/ci.yaml", "config/schema.yaml"], "config/schema.yaml is a JSON schema"),
        (["store", "--store", "no/such/store", "ls"], "store no/such/store does not exist"),
        (["store", "--store", "no/such/store", "verify"], "store no/such/store does not exist"),
        (["status", "--configfile", "no_such.yaml"], "config file no_such.yaml does not exist"),
    ],
)
def test_bad_cli_inputs_are_one_line_errors(argv, fragment, capsys, monkeypatch):
    monkeypatch.chdir(REPO)
    assert cli(argv) == 2
    err = capsys.readouterr().err
    assert fragment in err and len(err.strip().splitlines()) == 1 and "Traceback" not in err


def test_verify_of_an_id_not_in_the_store_fails(tmp_path, capsys):
    write_node(tmp_path / "store", "stage", "0123456789ab")
    assert cli(["store", "--store", str(tmp_path / "store"), "verify", "0123456789ab"]) == 0
    assert cli(["store", "--store", str(tmp_path / "store"), "verify", "deadbeef0000"]) == 1
    out = capsys.readouterr().out
    assert f"FAIL deadbeef0000: no such node in store {tmp_path / 'store'}" in out and "0 of 1 nodes verify" in out
