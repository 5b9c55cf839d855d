"""Cluster execution: the workflow through `--profile profiles/slurm` on a real Slurm.

A single-node Slurm is started on this machine by scripts/slurm/local_cluster.sh
(Debian slurm-wlm + munge, needs root; the tests skip, saying why, where it cannot
run). Snakemake runs detached with the shipped profile plus the options a cluster
without an accounting database needs (LOCAL_ONLY_OPTIONS), is polled against a bound,
and any job it leaves behind is cancelled. Results must be byte-identical to a local
run of the same config.

- the toy workflow (tests/workflow): seconds of work, about a minute through Slurm;
- a failing job is reported as failed (no hang) and leaves no complete node;
- config/ci.yaml, the whole DAG (also marked `integration`: tens of minutes on 2 cores).
"""

from __future__ import annotations

import json
import math
import os
import re
import shutil
import signal
import subprocess
import time
import uuid
from pathlib import Path

import pytest
import yaml
from conftest import (
    REPO,
    RERUN_TRIGGERS,
    TOY_SNAKEFILE,
    planned_jobs,
    run_snakemake,
    snakemake_cmd,
)

pytestmark = [pytest.mark.slurm, pytest.mark.slow]

LOCAL_CLUSTER = REPO / "scripts" / "slurm" / "local_cluster.sh"
PROFILE = REPO / "profiles" / "slurm"
# Without an accounting database the plugin's default status command (sacct) fails
# silently and Snakemake waits forever; squeue works while MinJobAge (300 s) keeps
# finished jobs visible. Real clusters have accounting and need none of this.
LOCAL_ONLY_OPTIONS = ["--slurm-status-command", "squeue", "--slurm-init-seconds-before-status-checks", "2"]
TOY_CONFIG = {"store": "store", "n": 40, "seed": 3, "factor": 2.0, "label": "toy"}
TOY_STAGES = ("numbers", "scaled", "summary")
OFFLINE = {"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}
SUBMITTED = re.compile(r"has been submitted with SLURM jobid (\d+)")
SBATCH_CALL = re.compile(r"^sbatch call: (sbatch .*)$", re.MULTILINE)


def _cluster_command(action: str, timeout_s: int = 120) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", str(LOCAL_CLUSTER), action], capture_output=True, text=True, timeout=timeout_s)


@pytest.fixture(scope="module")
def slurm_cluster():
    """A running single-node Slurm; stopped and removed afterwards if this fixture started it."""
    if shutil.which("sbatch") is None or shutil.which("slurmctld") is None:
        pytest.skip("Slurm is not installed: `sudo bash scripts/slurm/local_cluster.sh install` (Debian slurm-wlm, munge)")
    already_running = _cluster_command("status").returncode == 0
    started = _cluster_command("start")
    if started.returncode == 2:
        pytest.skip(f"cannot run a local Slurm here: {started.stderr.strip().splitlines()[-1]}")
    assert started.returncode == 0, f"local_cluster.sh start failed:\n{started.stderr}"
    try:
        yield
    finally:
        if not already_running:
            stopped = _cluster_command("clean")
            assert stopped.returncode == 0, f"local_cluster.sh clean failed:\n{stopped.stderr}"


def _cancel_jobs_named(prefix: str) -> None:
    queue = subprocess.run(["squeue", "-h", "-o", "%i %200j"], capture_output=True, text=True, timeout=60)
    leftover = [line.split()[0] for line in queue.stdout.splitlines() if line.split()[1:] and line.split()[1].startswith(prefix)]
    if leftover:
        subprocess.run(["scancel", *leftover], capture_output=True, timeout=60)


def run_through_slurm(args: list[str], cwd: Path, timeout_s: int) -> tuple[int, str]:
    """Run Snakemake with the Slurm profile, detached, polled against a bound.

    Snakemake treats SIGTERM as "let running jobs finish", so on timeout (or any error
    here) its whole process group is killed and the Slurm jobs it submitted, found by
    their job-name prefix, are cancelled.
    """
    prefix = f"saetest_{uuid.uuid4().hex[:8]}"
    cmd = snakemake_cmd(*args, "--profile", str(PROFILE), *LOCAL_ONLY_OPTIONS, "--slurm-jobname-prefix", prefix, "--verbose")
    log_path = cwd / "snakemake-slurm.log"
    with open(log_path, "w") as log:
        process = subprocess.Popen(
            cmd, cwd=cwd, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
            env={**os.environ, "PYTHONHASHSEED": "0", **OFFLINE},
        )  # fmt: skip
    deadline = time.monotonic() + timeout_s
    try:
        while process.poll() is None and time.monotonic() < deadline:
            time.sleep(1)
    finally:
        timed_out = process.poll() is None
        if timed_out:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=30)
        _cancel_jobs_named(prefix)
    output = log_path.read_text()
    if timed_out:
        pytest.fail(f"snakemake through Slurm did not finish within {timeout_s} s; last lines:\n{output[-3000:]}")
    return process.returncode, output


def profile_groups() -> dict[str, tuple[str, int]]:
    """Rule -> (its group, how many of its jobs go to Slurm as one job) from the shipped profile's
    `groups` and `group-components` (rules not listed: one job per submission)."""
    profile = yaml.safe_load((PROFILE / "config.yaml").read_text())
    groups = dict(item.split("=") for item in profile.get("groups", []))
    components = {group: int(n) for group, n in (item.split("=") for item in profile.get("group-components", []))}
    return {rule: (group, components.get(group, 1)) for rule, group in groups.items()}


def sbatch_calls(output: str) -> dict[str, list[str]]:
    """Rule name -> the sbatch command lines the plugin ran for it (logged with --verbose).

    A group job's comment names the group and its rules (``rule_<group>_<rule>``, the
    plugin's name of a group job); the profile's groups each hold one rule."""
    grouped = {f"{group}_{rule}": rule for rule, (group, _) in profile_groups().items()}
    calls: dict[str, list[str]] = {}
    for call in SBATCH_CALL.findall(output):
        rule = re.search(r"--comment rule_(\w+?)(?:_wildcards_\w+)?\s", call)
        assert rule, f"cannot tell the rule of: {call[:200]}"
        calls.setdefault(grouped.get(rule.group(1), rule.group(1)), []).append(call)
    return calls


def option(call: str, flag: str) -> str | None:
    match = re.search(rf"\s{re.escape(flag)}[ =](\S+)", call)
    return match.group(1) if match else None


def profile_runtime(rule: str) -> int:
    """The first-attempt runtime (minutes) the shipped profile gives a rule: its own entry,
    else the default (which Snakemake uses only for rules that declare no runtime)."""
    profile = yaml.safe_load((PROFILE / "config.yaml").read_text())
    expression = str(profile["set-resources"].get(rule, {}).get("runtime", profile["default-resources"]["runtime"]))
    return int(eval(expression, {"__builtins__": {}}, {"attempt": 1}))


def workflow_local_rules() -> set[str]:
    """Rules that never go to Slurm: `all` and every rule marked `localrule: True` in rules/*.smk."""
    local = {"all"}
    for path in sorted((REPO / "rules").glob("*.smk")):
        for block in re.split(r"^\s*rule ", path.read_text(), flags=re.MULTILINE)[1:]:
            name = block.split(":", 1)[0].strip()
            if re.search(r"^\s*localrule:\s*True", block, flags=re.MULTILINE):
                local.add(name)
    return local


def profile_rules() -> set[str]:
    return set(yaml.safe_load((PROFILE / "config.yaml").read_text())["set-resources"])


def toy_args(config: Path) -> list[str]:
    return ["-s", str(TOY_SNAKEFILE), "--configfile", str(config), *RERUN_TRIGGERS]


def toy_workdir(root: Path, **overrides) -> tuple[Path, Path]:
    root.mkdir(parents=True)
    config = root / "config.yaml"
    config.write_text(yaml.safe_dump({**TOY_CONFIG, **overrides}))
    return root, config


def store_contents(store: Path) -> dict[str, bytes]:
    """Every file of every node, except the manifests' run-specific fields (time, host)."""
    contents = {}
    for path in sorted(store.rglob("*")):
        if path.is_file():
            relative = str(path.relative_to(store))
            if path.name == "manifest.json":
                manifest = json.loads(path.read_text())
                contents[relative] = repr(sorted(manifest["files"].items())).encode()
            else:
                contents[relative] = path.read_bytes()
    return contents


def test_toy_workflow_through_slurm_matches_a_local_run(slurm_cluster, tmp_path):
    local_dir, local_config = toy_workdir(tmp_path / "local")
    run_snakemake([*toy_args(local_config), "--cores", "1"], cwd=local_dir)

    slurm_dir, slurm_config = toy_workdir(tmp_path / "slurm")
    returncode, output = run_through_slurm(toy_args(slurm_config), slurm_dir, timeout_s=300)
    assert returncode == 0, output[-4000:]

    # Every job went through Slurm, with the profile's default requests (the toy rules declare none).
    calls = sbatch_calls(output)
    assert sorted(calls) == sorted([*TOY_STAGES, "view"])
    assert len(SUBMITTED.findall(output)) == len(TOY_STAGES) + 1
    for rule, rule_calls in calls.items():
        (call,) = rule_calls
        assert option(call, "-t") == str(profile_runtime(rule)), call
        assert option(call, "--mem") == "2000", call
        assert option(call, "--gpus") is None, call

    assert store_contents(slurm_dir / "store") == store_contents(local_dir / "store")
    assert (slurm_dir / "view" / "summary.json").read_bytes() == (local_dir / "view" / "summary.json").read_bytes()
    assert planned_jobs(run_snakemake([*toy_args(slurm_config), "-n"], cwd=slurm_dir).stdout) == {}


def test_failing_job_is_reported_and_leaves_no_complete_node(slurm_cluster, tmp_path):
    workdir, config = toy_workdir(tmp_path / "failing", n=-1)  # numpy rejects a negative size
    returncode, output = run_through_slurm(toy_args(config), workdir, timeout_s=300)
    assert returncode != 0
    assert re.search(r"SLURM-job '\d+' failed", output), output[-3000:]
    first, retry = sbatch_calls(output)["numbers"]  # the profile's `retries: 1` resubmits once
    assert len(SUBMITTED.findall(output)) == 2
    # ... asking for twice the memory and time (the profile's `* attempt` expressions)
    assert (option(first, "--mem"), option(first, "-t")) == ("2000", str(profile_runtime("numbers")))
    assert (option(retry, "--mem"), option(retry, "-t")) == ("4000", str(2 * profile_runtime("numbers")))
    assert not list((workdir / "store").glob("numbers/*/manifest.json")), "a failed job left a complete node"


@pytest.mark.integration
@pytest.mark.cluster_full
def test_ci_config_through_slurm_is_byte_identical_to_a_local_run(slurm_cluster, tmp_path):
    from test_integration import SYNTHESIS, workflow_copy

    ci = ["--configfile", "config/ci.yaml", *RERUN_TRIGGERS]
    local = workflow_copy(tmp_path / "local")
    run_snakemake(["--cores", "2", *ci], cwd=local, env=OFFLINE, timeout=3600)

    cluster = workflow_copy(tmp_path / "slurm")
    planned = planned_jobs(run_snakemake(["-n", *ci], cwd=cluster).stdout)
    returncode, output = run_through_slurm(ci, cluster, timeout_s=5400)
    assert returncode == 0, output[-4000:]

    calls = sbatch_calls(output)
    local_rules = workflow_local_rules()
    assert {"publish", "ledger"} <= local_rules
    # one submission per job, except the profile's groups: ceil(jobs / group-components) per rule
    groups = profile_groups()
    submissions = {r: math.ceil(n / groups[r][1]) if r in groups else n for r, n in planned.items() if r not in local_rules}
    assert {rule: len(c) for rule, c in calls.items()} == submissions
    assert set(calls) & profile_rules(), "no rule of the DAG has an entry in the profile"
    for rule, rule_calls in calls.items():
        for call in rule_calls:
            if rule in profile_rules():
                assert option(call, "-t") == str(profile_runtime(rule)), call
            assert option(call, "--mem") is not None and option(call, "--gpus") is None, call  # ci.yaml: gpus 0

    for name in SYNTHESIS:
        assert (cluster / "results" / name).read_bytes() == (local / "results" / name).read_bytes(), name
