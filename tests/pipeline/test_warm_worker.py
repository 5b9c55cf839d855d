"""The warm worker (pipeline/warm_worker.py): a job handed to it builds the same node, bytes
and all, as a job built in its own process; it gets the child's exit code and error line;
a job of another interpreter is refused and runs in its own process; killing a job kills
its child; the worker ends with the Snakemake process that started it."""

from __future__ import annotations

import os
import pickle
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import pytest
from conftest import REPO

from sae_difficulty.pipeline import warm_worker
from sae_difficulty.pipeline.config import resolve_config
from sae_difficulty.pipeline.study import build_plan

JOB = "import pickle, sys\nfrom sae_difficulty.pipeline.warm_worker import run_stage\nrun_stage(pickle.load(open(sys.argv[1], 'rb')), 'tasks')\n"


def _wait_for(condition, timeout_s: float = 30.0) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.1)
    return False


def _start_worker(socket_path: Path, owner: int) -> subprocess.Popen:
    # --no-preload: the protocol does not depend on what is imported first (the real run preloads).
    process = subprocess.Popen([sys.executable, "-m", "sae_difficulty.pipeline.warm_worker", "--socket", str(socket_path),
                                "--owner", str(owner), "--no-preload"])  # fmt: skip
    assert _wait_for(socket_path.exists), "the worker never opened its socket"
    return process


@pytest.fixture
def worker(tmp_path_factory: pytest.TempPathFactory):
    # A short directory: a Unix socket's path is limited to about 100 characters.
    directory = Path(os.environ.get("TMPDIR", "/tmp")) / f"ww-{os.getpid()}-{time.monotonic_ns()}"
    directory.mkdir()
    path = directory / "w.sock"
    process = _start_worker(path, os.getpid())
    yield SimpleNamespace(path=path, process=process)
    process.terminate()
    process.wait(timeout=10)
    for leftover in (path, Path(warm_worker.ready_marker(str(path)))):  # a killed worker leaves them
        leftover.unlink(missing_ok=True)
    directory.rmdir()


@pytest.fixture(scope="module")
def tasks_node():
    """The CI config's HellaSwag tasks node (no parents: generated from its params)."""
    config = resolve_config([str(REPO / "config" / "ci.yaml")])
    node = next(n for n in build_plan(config).nodes.values() if n.stage == "tasks" and n.params.get("modality") == "llm")
    return node, config


def _start_job(tmp: Path, store: Path, spec: dict, config: dict, node_id: str, env: dict[str, str]) -> tuple[subprocess.Popen, Path]:
    """Start one job process as Snakemake would run the rule script; the process and its log."""
    log = tmp / f"{store.name}.log"
    snakemake = SimpleNamespace(
        log=[str(log)], input={}, config=config,
        output=SimpleNamespace(manifest=str(store / "tasks" / node_id / "manifest.json")), params=SimpleNamespace(spec=spec),
    )  # fmt: skip
    (tmp / f"{store.name}.pickle").write_bytes(pickle.dumps(snakemake))
    process = subprocess.Popen([sys.executable, "-c", JOB, str(tmp / f"{store.name}.pickle")], cwd=REPO, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True, env={**os.environ, **env})  # fmt: skip
    return process, log


def _job(tmp: Path, store: Path, spec: dict, config: dict, node_id: str, env: dict[str, str]) -> tuple[subprocess.CompletedProcess, Path]:
    """Run one job process to its end; its result and its log."""
    process, log = _start_job(tmp, store, spec, config, node_id, env)
    stdout, stderr = process.communicate(timeout=300)
    return subprocess.CompletedProcess(process.args, process.returncode, stdout, stderr), log


def test_a_job_built_in_the_worker_writes_the_same_bytes_as_one_built_in_its_own_process(worker, tasks_node, tmp_path):
    node, config = tasks_node
    warm, warm_log = _job(tmp_path, tmp_path / "warm", node.spec, config, node.id, {warm_worker.SOCKET_ENV: str(worker.path)})
    cold, cold_log = _job(tmp_path, tmp_path / "cold", node.spec, config, node.id, {warm_worker.SWITCH_ENV: "0",
                                                                                   warm_worker.SOCKET_ENV: str(worker.path)})  # fmt: skip
    assert warm.returncode == 0 and cold.returncode == 0, (warm.stderr, cold.stderr)
    assert "warm worker's child" in warm_log.read_text() and "peak RSS" in warm_log.read_text()
    assert "warm worker" not in cold_log.read_text()
    warm_dir, cold_dir = (tmp_path / name / "tasks" / node.id for name in ("warm", "cold"))
    names = sorted(p.relative_to(warm_dir) for p in warm_dir.rglob("*") if p.is_file() and p.name != "manifest.json")
    assert names and names == sorted(p.relative_to(cold_dir) for p in cold_dir.rglob("*") if p.is_file() and p.name != "manifest.json")
    for name in names:
        assert (warm_dir / name).read_bytes() == (cold_dir / name).read_bytes(), name


def test_a_failing_build_in_the_worker_gives_the_job_its_exit_code_and_one_line(worker, tasks_node, tmp_path):
    node, config = tasks_node
    broken = {**node.spec, "params": {**node.spec["params"], "n_examples": "many"}}
    result, log = _job(tmp_path, tmp_path / "store", broken, config, node.id, {warm_worker.SOCKET_ENV: str(worker.path)})
    assert result.returncode == 1
    assert f"error: tasks node {node.id}:" in result.stderr  # through the job's own stderr
    assert "warm worker's child" in log.read_text()
    assert not (tmp_path / "store" / "tasks" / node.id / "manifest.json").exists()


def test_a_job_of_another_interpreter_is_refused_and_runs_in_its_own_process(worker, monkeypatch):
    monkeypatch.setenv(warm_worker.SOCKET_ENV, str(worker.path))
    monkeypatch.setattr(warm_worker, "identity", lambda: ("/another/python", "/another/sae_difficulty/__init__.py"))
    assert warm_worker._run_in_worker(SimpleNamespace(), "tasks") is None  # None: build it here
    monkeypatch.setenv(warm_worker.SOCKET_ENV, str(worker.path) + ".gone")
    assert warm_worker._run_in_worker(SimpleNamespace(), "tasks") is None


class _SlowToUnpickle:
    """Unpickling it sleeps: a child that is busy when its job goes away."""

    def __reduce__(self):
        return time.sleep, (120,)


def _children(pid: int) -> list[int]:
    return [int(c) for c in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]


def _running(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split()[2] not in ("Z", "X")
    except FileNotFoundError:
        return False


def test_killing_the_job_kills_its_child(worker, tmp_path):
    payload = pickle.dumps({"identity": warm_worker.identity(), "stage": "tasks", "cwd": str(tmp_path), "environ": dict(os.environ),
                            "argv": ["job"], "snakemake": pickle.dumps(_SlowToUnpickle())})  # fmt: skip
    with open(os.devnull, "w") as sink:
        connection = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        connection.connect(str(worker.path))
        socket.send_fds(connection, [warm_worker._HEADER.pack(len(payload))], [sink.fileno(), sink.fileno()])
        connection.sendall(payload)
        assert connection.recv(1) == warm_worker.ACCEPTED
        assert _wait_for(lambda: bool(_children(worker.process.pid)))
        (child,) = _children(worker.process.pid)
        assert _running(child)
        connection.close()  # what the job's death does to its end of the socket
    assert _wait_for(lambda: not _running(child), timeout_s=10), "the child outlived its job"


def test_the_worker_exits_when_the_process_that_started_it_is_gone(tmp_path):
    directory = Path(os.environ.get("TMPDIR", "/tmp")) / f"wo-{os.getpid()}-{time.monotonic_ns()}"
    directory.mkdir()
    owner = subprocess.Popen(["sleep", "1"])
    process = _start_worker(directory / "w.sock", owner.pid)
    owner.wait()
    try:
        process.wait(timeout=15)
    finally:
        process.kill()
    assert process.returncode == 0 and not (directory / "w.sock").exists()
    directory.rmdir()


def test_a_job_queued_on_a_worker_that_dies_before_taking_it_runs_in_its_own_process(worker, tasks_node, tmp_path):
    node, config = tasks_node
    os.kill(worker.process.pid, signal.SIGSTOP)  # a worker still busy importing: the job connects and waits
    process, log = _start_job(tmp_path, tmp_path / "store", node.spec, config, node.id, {warm_worker.SOCKET_ENV: str(worker.path)})
    time.sleep(3)
    assert process.poll() is None, process.communicate()  # queued, not run
    os.kill(worker.process.pid, signal.SIGKILL)
    _, stderr = process.communicate(timeout=300)
    assert process.returncode == 0, stderr
    assert "warm worker" not in log.read_text() and "done tasks/" in log.read_text()
    assert (tmp_path / "store" / "tasks" / node.id / "manifest.json").exists()


def test_start_returns_once_the_worker_serves_so_the_first_job_runs_in_it(tasks_node, tmp_path, monkeypatch):
    node, config = tasks_node
    worker_log = tmp_path / "worker.log"
    monkeypatch.delenv(warm_worker.SOCKET_ENV, raising=False)
    monkeypatch.setenv(warm_worker.SWITCH_ENV, "0")
    assert warm_worker.start(worker_log) is None and warm_worker.SOCKET_ENV not in os.environ
    monkeypatch.setenv(warm_worker.SWITCH_ENV, "1")
    handle = warm_worker.start(worker_log)
    try:
        path = Path(os.environ[warm_worker.SOCKET_ENV])
        # Snakemake starts jobs as soon as onstart returns: by then the worker has imported everything.
        assert Path(warm_worker.ready_marker(str(path))).exists() and "imports took" in worker_log.read_text()
        result, log = _job(tmp_path, tmp_path / "store", node.spec, config, node.id, {warm_worker.SOCKET_ENV: str(path)})
        assert result.returncode == 0, result.stderr
        assert "warm worker's child" in log.read_text()
    finally:
        handle.stop()
    assert not path.parent.exists() and warm_worker.SOCKET_ENV not in os.environ
