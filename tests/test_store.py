"""Store internals: atomic node writes, verification, garbage collection, the CLI."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from sae_difficulty.cli import main as cli
from sae_difficulty.pipeline.config import load_config
from sae_difficulty.pipeline.plan import Plan, node_id
from sae_difficulty.pipeline.store import NodeWriter, is_complete, verify_node
from sae_difficulty.pipeline.study import build_plan


def write_node(store: Path, stage: str, nid: str, content: bytes = b"payload") -> Path:
    final = store / stage / nid
    with NodeWriter(final, {"stage": stage, "id": nid}) as writer:
        (writer.path / "data.bin").write_bytes(content)
        (writer.path / "sub").mkdir()
        (writer.path / "sub" / "part.txt").write_text("x")
    return final


def test_node_id_depends_on_params_parents_and_version():
    plan = Plan({"a": "1", "b": "1"})
    a = plan.add("a", "a", {"x": 1})
    b = plan.add("b", "b", {"y": 2}, {"up": a})
    assert len(b.id) == 12
    assert Plan({"a": "1", "b": "1"}).add("a", "a", {"x": 1}).id == a.id
    assert Plan({"a": "1", "b": "1"}).add("a", "a", {"x": 2}).id != a.id
    assert Plan({"a": "2", "b": "1"}).add("a", "a", {"x": 1}).id != a.id
    other = Plan({"a": "1", "b": "1"})
    b2 = other.add("b", "b", {"y": 2}, {"up": other.add("a", "a", {"x": 9})})
    assert b2.id != b.id
    assert node_id({"k": 1, "j": 2}) == node_id({"j": 2, "k": 1})


def test_writer_is_atomic_and_manifest_lists_every_file(tmp_path):
    final = write_node(tmp_path, "stage", "abc123abc123")
    assert is_complete(final) and verify_node(final) == []
    manifest = json.loads((final / "manifest.json").read_text())
    assert set(manifest["files"]) == {"data.bin", "spec.json", "sub/part.txt"}
    assert not [p for p in (tmp_path / "stage").iterdir() if p.name.startswith(".")]


def test_failed_build_leaves_store_unchanged(tmp_path):
    final = tmp_path / "stage" / "abc123abc123"
    with pytest.raises(RuntimeError):
        with NodeWriter(final, {}) as writer:
            (writer.path / "half.bin").write_bytes(b"half")
            raise RuntimeError("killed")
    assert not final.exists()
    assert list((tmp_path / "stage").iterdir()) == []


def test_existing_complete_node_is_never_overwritten(tmp_path):
    first = write_node(tmp_path, "stage", "abc123abc123", b"first")
    write_node(tmp_path, "stage", "abc123abc123", b"second")
    assert (first / "data.bin").read_bytes() == b"first"
    assert verify_node(first) == []


def test_incomplete_leftover_is_replaced(tmp_path):
    leftover = tmp_path / "stage" / "abc123abc123"
    leftover.mkdir(parents=True)
    (leftover / "junk").write_text("from a killed job")
    final = write_node(tmp_path, "stage", "abc123abc123")
    assert not (final / "junk").exists() and verify_node(final) == []


def test_verify_detects_a_flipped_byte(tmp_path, capsys):
    final = write_node(tmp_path / "store", "stage", "abc123abc123", b"\x00" * 64)
    assert cli(["store", "--store", str(tmp_path / "store"), "verify"]) == 0
    data = bytearray((final / "data.bin").read_bytes())
    data[10] ^= 0xFF
    (final / "data.bin").write_bytes(bytes(data))
    assert cli(["store", "--store", str(tmp_path / "store"), "verify"]) == 1
    out = capsys.readouterr().out
    assert "FAIL stage/abc123abc123" in out and "data.bin" in out and "sha256" in out


def _config(tmp_path: Path, name: str, **overrides) -> Path:
    config = {"name": name, "store": str(tmp_path / "store"), **overrides}
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def test_gc_keeps_every_node_a_kept_config_reaches(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(Path(__file__).resolve().parents[1])  # resources/ for the ETTh1 checksum
    kept = _config(tmp_path, "kept")
    dropped = _config(tmp_path, "dropped", sae={"k": 7})
    store = tmp_path / "store"
    kept_ids = {n.id: n.stage for n in build_plan(load_config(kept)).nodes.values()}
    dropped_only = {n.id: n.stage for n in build_plan(load_config(dropped)).nodes.values() if n.id not in kept_ids}
    assert dropped_only, "changing sae.k must create new nodes"
    for nid, stage in {**kept_ids, **dropped_only}.items():
        write_node(store, stage, nid)
    assert cli(["store", "--store", str(store), "gc", "--keep-config", str(kept)]) == 0  # dry run
    assert all((store / stage / nid).exists() for nid, stage in dropped_only.items())
    assert cli(["store", "--store", str(store), "gc", "--keep-config", str(kept), "--yes"]) == 0
    assert all((store / stage / nid).exists() for nid, stage in kept_ids.items())
    assert not any((store / stage / nid).exists() for nid, stage in dropped_only.items())
    capsys.readouterr()
    assert cli(["store", "--store", str(store), "ls", "--config", str(kept)]) == 0
    listing = capsys.readouterr().out
    assert "kept.yaml" in listing and next(iter(kept_ids)) in listing


def test_status_reports_done_and_missing(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(Path(__file__).resolve().parents[1])
    config = _config(tmp_path, "st")
    plan = build_plan(load_config(config))
    backbone = plan.stage("backbone")[0]
    write_node(tmp_path / "store", "backbone", backbone.id)
    assert cli(["status", "--config", str(config)]) == 0
    out = capsys.readouterr().out
    assert f"done       backbone/{backbone.id}" in out
    assert f"missing    synthesis/{plan.synthesis.id}" in out
