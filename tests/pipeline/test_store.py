"""Store internals: atomic node writes, verification, garbage collection, the CLI."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml
from conftest import REPO

from sae_difficulty.cli import main as cli
from sae_difficulty.pipeline.config import resolve_config
from sae_difficulty.pipeline.outputs import Declaration, declared_outputs
from sae_difficulty.pipeline.plan import Plan, node_id
from sae_difficulty.pipeline.runner import run_node
from sae_difficulty.pipeline.store import (
    NodeWriter,
    build_manifest,
    is_complete,
    leftovers,
    verify_node,
)
from sae_difficulty.pipeline.study import build_plan
from sae_difficulty.utils.errors import StoreError


def write_node(store: Path, stage: str, nid: str, content: bytes = b"payload") -> Path:
    """A stand-in node of any stage (its stage's declared outputs are not written)."""
    final = store / stage / nid
    with NodeWriter(final, {"stage": stage, "id": nid}, Declaration()) as writer:
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
    monkeypatch.chdir(REPO)  # resources/ for the ETTh1 checksum
    kept = _config(tmp_path, "kept")
    dropped = _config(tmp_path, "dropped", sae={"k": 7})
    store = tmp_path / "store"
    kept_ids = {n.id: n.stage for n in build_plan(resolve_config([kept])).nodes.values()}
    dropped_only = {n.id: n.stage for n in build_plan(resolve_config([dropped])).nodes.values() if n.id not in kept_ids}
    assert dropped_only, "changing sae.k must create new nodes"
    for nid, stage in {**kept_ids, **dropped_only}.items():
        write_node(store, stage, nid)
    assert cli(["store", "--store", str(store), "gc", "--keep-config", str(kept)]) == 0  # dry run
    assert all((store / stage / nid).exists() for nid, stage in dropped_only.items())
    assert cli(["store", "--store", str(store), "gc", "--keep-config", str(kept), "--yes"]) == 0
    assert all((store / stage / nid).exists() for nid, stage in dropped_only.items()), "deleted nodes younger than --min-age"
    assert cli(["store", "--store", str(store), "gc", "--keep-config", str(kept), "--yes", "--force"]) == 0
    assert all((store / stage / nid).exists() for nid, stage in kept_ids.items())
    assert not any((store / stage / nid).exists() for nid, stage in dropped_only.items())
    capsys.readouterr()
    assert cli(["store", "--store", str(store), "ls", "--config", str(kept)]) == 0
    listing = capsys.readouterr().out
    assert "kept.yaml" in listing and next(iter(kept_ids)) in listing


def test_status_reports_done_and_missing(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(REPO)
    config = _config(tmp_path, "st")
    plan = build_plan(resolve_config([config]))
    backbone = plan.stage("backbone")[0]
    write_node(tmp_path / "store", "backbone", backbone.id)
    assert cli(["status", "--config", str(config)]) == 0
    out = capsys.readouterr().out
    assert f"done       backbone/{backbone.id}" in out
    assert f"missing    synthesis/{plan.synthesis.id}" in out


# --- what a complete node holds: declared outputs ---------------------------------------

EXTRACT_SPEC = {"stage": "extract", "version": "2", "params": {"layer": 1}, "parents": {}}


def _write_extract_outputs(out: Path, arrays: bool = True) -> None:
    """What the extract stage writes (the arrays of saes.cache's activation-cache contract)."""
    import numpy as np
    import pandas as pd

    from sae_difficulty.saes.cache import write_activation_cache
    from sae_difficulty.utils.io import write_json, write_parquet

    if arrays:
        rows = np.random.default_rng(0).normal(size=(12, 4)).astype(np.float32)
        write_activation_cache(out / "activations.zarr", rows, np.array([0, 5, 12]))
    write_parquet(out / "examples.parquet", pd.DataFrame({"id": ["a", "b"]}))
    write_json(out / "extract.json", {"layer": 1})


def test_writer_refuses_to_publish_a_node_missing_a_declared_array(tmp_path):
    final = tmp_path / "extract" / "0000000000ee"
    with pytest.raises(StoreError, match="did not write activations.zarr") as error:
        with NodeWriter(final, EXTRACT_SPEC) as writer:
            _write_extract_outputs(writer.path, arrays=False)
    assert "\n" not in str(error.value)
    assert not final.exists() and leftovers(tmp_path) == []
    with NodeWriter(final, EXTRACT_SPEC) as writer:
        _write_extract_outputs(writer.path)
    manifest = json.loads((final / "manifest.json").read_text())
    assert manifest["declared"]["arrays"] == {"activations.zarr": ["last", "max", "mean", "offsets", "tokens"]}
    assert verify_node(final) == []


@pytest.mark.parametrize("recorded", [True, False], ids=["declaration-in-manifest", "manifest-before-declarations"])
def test_verify_fails_a_node_missing_a_declared_array(tmp_path, capsys, recorded):
    """The issue's fake node: a complete-looking extract node without `tokens` and `offsets`,
    whose manifest hashes exactly the files it has."""
    store = tmp_path / "store"
    final = store / "extract" / "0000000000ee"
    with NodeWriter(final, EXTRACT_SPEC) as writer:
        _write_extract_outputs(writer.path)
    for name in ("tokens", "offsets"):
        shutil.rmtree(final / "activations.zarr" / name)
    manifest = build_manifest(final, final.name, "extract", 0.0)
    if recorded:
        manifest["declared"] = declared_outputs("extract").to_dict()
    else:
        manifest.pop("declared")
    (final / "manifest.json").write_text(json.dumps(manifest))

    assert cli(["store", "--store", str(store), "verify"]) == 1
    out = capsys.readouterr().out
    assert "declared output activations.zarr/tokens (zarr array) is missing" in out
    assert "activations.zarr/offsets (zarr array)" in out and "0 of 1 nodes verify" in out
    assert cli(["store", "--store", str(store), "verify", "--remove"]) == 1
    assert not final.exists(), "--remove must delete the failing node so the next run rebuilds it"


def test_every_stage_declares_what_its_nodes_hold():
    from sae_difficulty.pipeline.study import STAGE_VERSIONS

    assert all(declared_outputs(stage, {}).files for stage in STAGE_VERSIONS)
    assert declared_outputs("eval_steering").files == ("steering.json", "steering.parquet", "headline.json")
    assert "model/tokenizer.json" in declared_outputs("backbone", {"modality": "llm", "hub": None}).files
    assert declared_outputs("backbone", {"modality": "llm", "hub": "EleutherAI/pythia-410m"}).files == ("source.json",)


# --- a full disk: one line on the console and in the log --------------------------------


class _FakeSnakemake:
    """The attributes of Snakemake's ``snakemake`` object that run_node reads."""

    def __init__(self, manifest: Path, log: Path, spec: dict):
        self.log = [str(log)]
        self.output = type("Output", (), {"manifest": str(manifest)})()
        self.params = type("Params", (), {"spec": spec})()
        self.config = {"blas_threads": 1}
        self.input = {}


@pytest.fixture
def small_tmpfs(tmp_path):
    mount_point = tmp_path / "small"
    mount_point.mkdir()
    if os.geteuid() != 0:
        pytest.skip("ENOSPC test mounts a 256 KiB tmpfs, which needs root (running as uid %d)" % os.geteuid())
    result = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(mount_point)], capture_output=True, text=True)
    if result.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here (mount said: {result.stderr.strip()})")
    try:
        yield mount_point
    finally:
        subprocess.run(["umount", str(mount_point)], check=False)


def test_full_disk_is_one_line_naming_the_store(small_tmpfs, tmp_path, capfd):
    store = small_tmpfs / "store"
    final = store / "stage" / "0000000000ff"
    log = tmp_path / "logs" / "stage.log"
    spec = {"stage": "stage", "version": "1", "params": {}, "parents": {}}

    def build(ctx):
        (ctx.out / "big.bin").write_bytes(b"\0" * (1 << 20))

    with pytest.raises(SystemExit) as exit_info:
        run_node(_FakeSnakemake(final / "manifest.json", log, spec), build)
    assert exit_info.value.code == 1
    console = capfd.readouterr().err.strip().splitlines()
    assert len(console) == 1 and "Traceback" not in console[0], console
    assert console[0].startswith("error: stage node 0000000000ff: no space left on the device of store")
    assert str(store) in console[0] and "bytes left" in console[0]
    logged = log.read_text()
    assert "Traceback" in logged and "Errno 28" in logged and logged.strip().splitlines()[-1] == console[0]
    assert not final.exists() and leftovers(store) == []


# --- byte-stable JSON --------------------------------------------------------------------


def test_sae_cfg_json_has_sorted_keys_and_still_loads(tmp_path):
    import torch
    from sae_lens import SAE

    from sae_difficulty.saes.training import (
        SAETrainingSpec,
        make_training_sae,
        save_sae,
    )

    paths = []
    for copy in ("a", "b"):
        torch.manual_seed(0)
        paths.append(save_sae(make_training_sae(SAETrainingSpec(architecture="topk", expansion=2, k=4), 8), tmp_path / copy))
    text = (paths[0] / "cfg.json").read_text()
    keys = list(json.loads(text))
    assert keys == sorted(keys), "cfg.json keys are not sorted"
    assert text == (paths[1] / "cfg.json").read_text()
    loaded = SAE.load_from_disk(str(paths[0]), device="cpu")
    assert loaded.cfg.d_in == 8 and loaded.cfg.d_sae == 16
