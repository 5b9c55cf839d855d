"""Shared fixtures: paths, and running Snakemake the way a user does."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
TOY_SNAKEFILE = REPO / "tests" / "workflow" / "Snakefile"
RERUN_TRIGGERS = ["--rerun-triggers", "mtime", "params", "input", "software-env"]


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


@pytest.fixture
def repo() -> Path:
    return REPO
