"""Shared fixtures: paths, and running Snakemake the way a user does."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from sae_difficulty.pipeline.runner import NodeContext

REPO = Path(__file__).resolve().parents[1]
TOY_SNAKEFILE = REPO / "tests" / "workflow" / "Snakefile"
RERUN_TRIGGERS = ["--rerun-triggers", "mtime", "params", "input", "software-env"]

# A modular-addition model that groks in about a thousand full-batch steps (seconds on one
# thread): p = 23 with a wide train fraction and a high learning rate, 2 layers, 32 wide.
SMALL_P = 23
SMALL_BACKBONE = {
    "p": SMALL_P, "train_fraction": 0.7, "d_model": 32, "n_heads": 2, "n_layers": 2, "d_mlp": 64, "lr": 0.01,
    "weight_decay": 1.0, "train_steps": 1500, "eval_every": 50, "stop_at_test_accuracy": 1.0, "stop_window": 100,
    "min_test_accuracy": 1.0, "seed": 0,
}  # fmt: skip


def snakemake_cmd(*args: str) -> list[str]:
    return [sys.executable, "-m", "snakemake", *args]


def run_snakemake(args: list[str], cwd: Path, check: bool = True, env: dict | None = None, timeout: int = 900):
    full_env = {**os.environ, "PYTHONHASHSEED": "0", **(env or {})}
    result = subprocess.run(snakemake_cmd(*args), cwd=cwd, capture_output=True, text=True, env=full_env, timeout=timeout)
    if check and result.returncode != 0:
        raise AssertionError(f"snakemake {' '.join(args)} failed ({result.returncode}):\n{result.stdout[-4000:]}\n{result.stderr[-4000:]}")
    return result


def planned_jobs(output: str) -> dict[str, int]:
    """Rule -> number of jobs, from the 'Job stats' table of a dry run (empty when nothing to do)."""
    counts: dict[str, int] = {}
    in_table = False
    for line in output.splitlines():
        if line.startswith("Job stats:"):
            in_table = True
            continue
        if in_table:
            match = re.match(r"^(\w+)\s+(\d+)\s*$", line.strip())
            if match and match.group(1) != "total":
                counts[match.group(1)] = int(match.group(2))
            elif line.strip().startswith("total"):
                break
    return counts


def node_context(stage: str, params: dict[str, Any], out: Path, parents: dict[str, Path] | None = None,
                 config: dict[str, Any] | None = None) -> NodeContext:
    """What ``run_node`` hands a stage's ``build``, without Snakemake or the store: ``out`` is
    the node directory (its name the node id), ``parents`` the parents' node directories by role."""
    out.mkdir(parents=True)
    spec = {"stage": stage, "version": "1", "params": params, "parents": {}}
    return NodeContext(spec, dict(parents or {}), out, dict(config or {}), out.name)


@pytest.fixture
def repo() -> Path:
    return REPO


# ----------------------------------------------------------------------------- the CI config's whole run
WORKFLOW_FILES = ("Snakefile", "rules", "scripts", "config", "resources", "envs", "profiles", "report", "paper")


def workflow_copy(root: Path) -> Path:
    """The workflow's files in ``root`` (no generated paper sections, PDFs or TeX build files)."""
    root.mkdir(parents=True)
    for name in WORKFLOW_FILES:
        source = REPO / name
        if source.is_dir():
            shutil.copytree(source, root / name, ignore=shutil.ignore_patterns("generated", "*.pdf", "build"))
        elif source.exists():
            shutil.copy2(source, root / name)
    return root


@pytest.fixture(scope="session")
def ci_runs(tmp_path_factory):
    """Two runs of config/ci.yaml from empty stores, each in its own workflow copy (shared by the
    integration and paper tests, so the CI config runs twice per session, not once per module).
    The first builds its nodes in the warm worker's forked children (the default of a local run),
    the second with the worker off, every job in its own process: the byte-identity tests of
    tests/test_integration.py then also prove that the worker changes no output."""
    runs = []
    for name, worker in (("first", "1"), ("second", "0")):
        workdir = workflow_copy(tmp_path_factory.mktemp("integration") / name)
        run_snakemake(["--cores", "2", "--configfile", "config/ci.yaml", *RERUN_TRIGGERS], cwd=workdir, timeout=1800,
                      env={"SAE_DIFFICULTY_WARM_WORKER": worker})  # fmt: skip
        runs.append(workdir)
    return runs


@pytest.fixture(scope="session")
def hf_home(tmp_path_factory) -> Path:
    """A Hugging Face cache as a cluster's login node has it after ``hf download`` and one online
    ``load_dataset`` per dataset (tests/hub_cache.py): real configs, random weights, a few hundred
    rows per dataset. Built once per session (about 30 s on 2 cores)."""
    from hub_cache import build_hf_home

    return build_hf_home(tmp_path_factory.mktemp("hf-home"))


def identity_sae(d_in: int):
    """An sae-lens ReLU SAE that reconstructs exactly: features i and d_in + i are relu(x_i) and
    relu(-x_i) (decoder rows e_i and -e_i; relu(x) - relu(-x) = x), plus one dead feature (index 2 d_in)."""
    import torch
    from sae_lens import StandardSAE, StandardSAEConfig

    sae = StandardSAE(StandardSAEConfig(d_in=d_in, d_sae=2 * d_in + 1))
    eye = torch.eye(d_in)
    with torch.no_grad():
        sae.W_enc.copy_(torch.cat([eye, -eye, torch.zeros(d_in, 1)], dim=1))
        sae.W_dec.copy_(torch.cat([eye, -eye, torch.zeros(1, d_in)], dim=0))
        sae.b_enc.zero_()
        sae.b_enc[-1] = -1.0
        sae.b_dec.zero_()
    return sae
