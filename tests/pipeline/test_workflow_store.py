"""The store's promises, checked by running Snakemake on the toy workflow.

- change a mid-DAG parameter: exactly that node and its descendants re-run;
- revert it: no store node re-runs (only the human-facing view may refresh);
- a config sharing the prefix reuses the upstream nodes;
- a job killed mid-write leaves no complete-looking node, and the next run rebuilds it.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import yaml
from conftest import (
    RERUN_TRIGGERS,
    TOY_SNAKEFILE,
    planned_jobs,
    run_snakemake,
    snakemake_cmd,
)

STORE_RULES = {"numbers", "scaled", "summary"}
BASE = {"store": "store", "n": 40, "seed": 3, "factor": 2.0, "label": "toy"}


def write_config(directory: Path, name: str, **overrides) -> Path:
    path = directory / name
    path.write_text(yaml.safe_dump({**BASE, **overrides}))
    return path


def snakemake_args(config: Path, *extra: str) -> list[str]:
    return ["-s", str(TOY_SNAKEFILE), "--configfile", str(config), "--cores", "1", *RERUN_TRIGGERS, *extra]


def dry_run(tmp_path: Path, config: Path) -> dict[str, int]:
    return planned_jobs(run_snakemake(snakemake_args(config, "-n"), cwd=tmp_path).stdout)


def test_param_change_reruns_only_descendants_and_revert_reruns_nothing(tmp_path):
    base = write_config(tmp_path, "base.yaml")
    run_snakemake(snakemake_args(base), cwd=tmp_path)
    assert dry_run(tmp_path, base) == {}

    changed = write_config(tmp_path, "changed.yaml", factor=3.0)
    assert dry_run(tmp_path, changed) == {"scaled": 1, "summary": 1, "view": 1}
    run_snakemake(snakemake_args(changed), cwd=tmp_path)

    planned = dry_run(tmp_path, base)
    assert not STORE_RULES & set(planned), f"reverting re-ran store nodes: {planned}"
    assert set(planned) <= {"view"}
    run_snakemake(snakemake_args(base), cwd=tmp_path)
    assert len(list((tmp_path / "store" / "scaled").iterdir())) == 2


def test_config_sharing_a_prefix_reuses_upstream_nodes(tmp_path):
    base = write_config(tmp_path, "base.yaml")
    run_snakemake(snakemake_args(base), cwd=tmp_path)
    relabelled = write_config(tmp_path, "relabelled.yaml", label="other")
    assert dry_run(tmp_path, relabelled) == {"summary": 1, "view": 1}


def test_killed_job_leaves_no_complete_node_and_is_rebuilt(tmp_path):
    config = write_config(tmp_path, "base.yaml")
    cmd = snakemake_cmd(*snakemake_args(config, "--config", "pause_s=60"))
    process = subprocess.Popen(cmd, cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    scaled_dir = tmp_path / "store" / "scaled"
    deadline = time.monotonic() + 120
    try:
        while not list(scaled_dir.glob(".tmp-*/started")):
            assert process.poll() is None, "snakemake ended before the job started writing"
            assert time.monotonic() < deadline, "the scaled job never started writing"
            time.sleep(0.2)
    finally:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=30)
    complete = [d for d in scaled_dir.iterdir() if not d.name.startswith(".") and (d / "manifest.json").exists()]
    assert complete == [], "a killed job left a complete-looking node"
    run_snakemake(snakemake_args(config, "--unlock"), cwd=tmp_path)  # a SIGKILL leaves Snakemake's lock behind
    assert planned_jobs(run_snakemake(snakemake_args(config, "-n"), cwd=tmp_path).stdout).get("scaled") == 1

    run_snakemake(snakemake_args(config), cwd=tmp_path)
    nodes = [d for d in scaled_dir.iterdir() if not d.name.startswith(".")]
    assert len(nodes) == 1 and (nodes[0] / "manifest.json").exists() and (nodes[0] / "more.json").exists()
