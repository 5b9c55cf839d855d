"""The warm worker: one process per local Snakemake run that imports the stages' libraries
once and forks a child per job, so a job no longer pays for its imports.

Why it exists: Snakemake runs every ``script:`` job in a fresh interpreter. A stage that
trains or reads an SAE with sae-lens imports sae-lens, transformer-lens and transformers
first: 7-8 s of CPU on a 2-core machine, for jobs whose work is often a few seconds (the
demo's 57 SAE jobs and 27 ground-truth jobs). That start-up was 29 % of the demo's job
time. Snakemake has no persistent worker (the answer build tools give to the same problem:
Bazel's persistent workers, Gradle's daemon), and the standard library's fork server
(``multiprocessing`` ``forkserver`` with ``set_forkserver_preload``) preloads modules once
but serves only the process that started it; Snakemake's jobs are separate processes that
Snakemake starts. Hence this small fork server with a Unix-socket front door.

What stays as it was:

* Every node is still one Snakemake job: the scheduler, ``threads``, resources, retries,
  logs and the benchmark's wall time are Snakemake's. The job process sends its request
  (the stage's name and its ``snakemake`` object) and its stdout/stderr descriptors, waits
  for the forked child and exits with the child's exit code. A killed job kills its child.
* The child does exactly what the job process would do: :func:`run_stage` →
  ``runner.run_node`` (the same temporary directory, manifest-last write, one-line errors),
  in the job's working directory, with the job's environment and ``argv``.
* Only local runs use it: the Snakefile's ``onstart`` starts it for a local executor in
  Snakemake's default mode (never for a cluster executor: a Slurm job never finds it). A
  job runs in its own process as before when the worker runs another interpreter or
  another copy of the package (a conda env, another venv), when it stopped before taking
  the job, or when ``SAE_DIFFICULTY_WARM_WORKER=0``.
* No job imports beside the worker: ``onstart`` returns once the worker has imported
  everything (about 8 s, once per run, reported in ``logs/warm_worker.log``), so the
  first jobs do not pay the imports themselves; on two cores the first jobs used to take
  15 s each importing sae-lens beside the worker. Should that wait time out, jobs queue on
  the socket, which opens before the imports.
* The worker only imports before it forks: no model, no tensor op, no thread pool
  (torch's own DataLoader workers fork the same way). It exits when Snakemake ends or
  disappears.

Known difference: Snakemake's benchmark TSV measures the job process, so its ``cpu_time``
and ``max_rss`` are those of the waiting job process; the child appends its own CPU time
and peak RSS to the job's log (``warm worker child: ...``).

This module imports only the standard library at the top: a job process that hands its
work to the worker must not pay the imports it is avoiding.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import os
import pickle
import re
import resource
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

#: Names the socket of the run's worker (set by :func:`start` in Snakemake's environment,
#: which every local job inherits).
SOCKET_ENV = "SAE_DIFFICULTY_WORKER_SOCKET"
#: ``0``/``false``/``no``/``off`` keeps every job in its own process.
SWITCH_ENV = "SAE_DIFFICULTY_WARM_WORKER"
STAGES_PACKAGE = "sae_difficulty.stages"
_STAGE_NAME = re.compile(r"^[a-z][a-z0-9_]*$")
_HEADER = struct.Struct("!Q")
_EXIT = struct.Struct("!i")
ACCEPTED, REFUSED = b"A", b"R"
#: How long ``start`` (Snakemake's onstart) waits for the worker's imports before letting jobs start.
_READY_WAIT_S = 120.0
#: Libraries the stages import inside ``build`` (loading a backbone), beside the stage modules.
LAZY_LIBRARIES = ("transformer_lens", "chronos", "snakemake.script")


def enabled() -> bool:
    return os.environ.get(SWITCH_ENV, "1").strip().lower() not in ("0", "false", "no", "off")


def identity() -> tuple[str, str]:
    """What must match between a job and the worker: the interpreter and the package's files."""
    import sae_difficulty  # the package's __init__ only: no heavy import

    return os.path.realpath(sys.executable), os.path.realpath(sae_difficulty.__file__)


def run_stage(snakemake: Any, stage: str) -> None:
    """A rule script's body: build the node of ``stage`` in the warm worker if one serves this
    job, else here. Exits non-zero (one line on the console) when the build fails."""
    code = _run_in_worker(snakemake, stage)
    if code is not None:
        # The work happened in the child; skip this process's interpreter shutdown (about 0.1 s
        # of tearing down Snakemake's modules, a third of a job's hand-off cost).
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    code = _build(snakemake, stage)
    if code:
        raise SystemExit(code)


def _build(snakemake: Any, stage: str, note: str = "") -> int:
    """Import the stage and run it through the node runner; the exit code it would give."""
    if not _STAGE_NAME.match(stage):
        print(f"error: stage name {stage!r}: expected a module name of {STAGES_PACKAGE}", file=sys.stderr)
        return 1
    from sae_difficulty.pipeline.runner import run_node

    module = importlib.import_module(f"{STAGES_PACKAGE}.{stage}")
    try:
        run_node(snakemake, module.build, note=note)
    except SystemExit as stop:
        return stop.code if isinstance(stop.code, int) else 1
    return 0


# --- the job's side ---------------------------------------------------------------------


def _run_in_worker(snakemake: Any, stage: str) -> int | None:
    """The child's exit code, or None when no worker takes this job (then it runs here)."""
    path = os.environ.get(SOCKET_ENV)
    if not path or not enabled():
        return None
    connection = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        connection.connect(path)
    except OSError:  # not up yet, or gone: run here
        connection.close()
        return None
    with connection:
        request = {"identity": identity(), "stage": stage, "cwd": os.getcwd(), "environ": dict(os.environ),
                   "argv": list(sys.argv), "snakemake": pickle.dumps(snakemake)}  # fmt: skip
        payload = pickle.dumps(request)
        sys.stdout.flush()
        sys.stderr.flush()
        try:  # a worker that stops before taking the job (while importing): run here
            socket.send_fds(connection, [_HEADER.pack(len(payload))], [sys.stdout.fileno(), sys.stderr.fileno()])
            connection.sendall(payload)
            if _receive_exactly(connection, 1) != ACCEPTED:
                return None
        except OSError:
            return None
        try:
            status = _receive_exactly(connection, _EXIT.size)
        except OSError:
            status = b""
    if len(status) < _EXIT.size:
        print(f"error: {stage}: the warm worker's child ended without an exit status (killed?); "
              f"re-run with {SWITCH_ENV}=0 to build it in the job's own process", file=sys.stderr)  # fmt: skip
        return 1
    return _EXIT.unpack(status)[0]


def _receive_exactly(connection: socket.socket, size: int) -> bytes:
    chunks, received = [], 0
    while received < size:
        chunk = connection.recv(size - received)
        if not chunk:
            break
        chunks.append(chunk)
        received += len(chunk)
    return b"".join(chunks)


# --- the worker's side --------------------------------------------------------------------


def _serve_one(connection: socket.socket) -> None:
    """In a forked child: take one job, run it, send its exit code; never returns."""
    code = 1
    try:
        header, descriptors, _, _ = socket.recv_fds(connection, _HEADER.size, 2)
        request = pickle.loads(_receive_exactly(connection, _HEADER.unpack(header)[0]))
        if tuple(request["identity"]) != identity() or len(descriptors) != 2:
            connection.sendall(REFUSED)
            os._exit(0)
        connection.sendall(ACCEPTED)
        for target, descriptor in zip((1, 2), descriptors):
            os.dup2(descriptor, target)
            os.close(descriptor)
        os.chdir(request["cwd"])
        os.environ.clear()
        os.environ.update(request["environ"])
        sys.argv = request["argv"]
        _die_with_the_job(connection)
        snakemake = pickle.loads(request["snakemake"])
        code = _build(snakemake, request["stage"], note=f"in the warm worker's child {os.getpid()}")
        _append_usage(snakemake)
    except BaseException as error:  # the job must get a status whatever happened
        with contextlib.suppress(Exception):
            print(f"error: warm worker: {type(error).__name__}: {error}", file=sys.stderr)
    finally:
        with contextlib.suppress(Exception):
            sys.stdout.flush()
            sys.stderr.flush()
            connection.sendall(_EXIT.pack(code))
        os._exit(code)


def _die_with_the_job(connection: socket.socket) -> None:
    """Kill this child when the job process goes away (Snakemake cancelled or killed it)."""

    def watch() -> None:
        with contextlib.suppress(OSError):
            while connection.recv(1):
                pass
        os.kill(os.getpid(), signal.SIGKILL)

    threading.Thread(target=watch, name="job-watch", daemon=True).start()


def _append_usage(snakemake: Any) -> None:
    """The child's CPU time and peak RSS, in the job's log (Snakemake's benchmark sees the job process)."""
    if not len(snakemake.log):
        return
    usage = resource.getrusage(resource.RUSAGE_SELF)
    with contextlib.suppress(OSError), open(snakemake.log[0], "a") as handle:
        handle.write(f"warm worker child: cpu {usage.ru_utime + usage.ru_stime:.2f} s, "
                     f"peak RSS {usage.ru_maxrss / 1024:.0f} MiB\n")  # fmt: skip


def preload() -> list[str]:
    """Import every stage module and the libraries the stages import inside ``build``; the names that failed."""
    import pkgutil

    stages = importlib.import_module(STAGES_PACKAGE)
    names = [f"{STAGES_PACKAGE}.{m.name}" for m in pkgutil.iter_modules(stages.__path__)]
    failed = []
    for name in (*names, *LAZY_LIBRARIES):
        try:
            importlib.import_module(name)
        except Exception:  # a job that needs it fails in its own process, with its own error
            failed.append(name)
    return failed


def ready_marker(path: str) -> str:
    """The file the worker creates once it has imported everything and serves (beside its socket)."""
    return f"{path}.ready"


def serve(path: str, owner: int, modules: bool = True, poll_s: float = 0.5) -> None:
    """Open the Unix socket ``path``, import, then run jobs until ``owner`` is gone or SIGTERM.

    The socket opens before the imports: a job that connects meanwhile waits in its queue
    (rather than importing the same libraries beside the worker) and falls back to its own
    process if the worker stops before taking it.
    """
    from sae_difficulty.pipeline.store import pid_alive

    stopping: list[bool] = []
    signal.signal(signal.SIGTERM, lambda *_: stopping.append(True))
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    staging = f"{path}.{os.getpid()}"
    listener.bind(staging)
    listener.listen(64)
    os.rename(staging, path)  # jobs see the socket only once it queues them
    children: set[int] = set()
    try:
        started = time.perf_counter()
        failed = preload() if modules else []
        print(f"warm worker {os.getpid()}: imports took {time.perf_counter() - started:.1f} s"
              + (f"; could not import {', '.join(failed)}" if failed else ""), flush=True)  # fmt: skip
        if threading.active_count() > 1:  # forking a threaded process could copy a held lock
            print(f"warm worker: {threading.active_count()} threads after the imports; not serving", flush=True)
            return
        Path(ready_marker(path)).touch()
        listener.settimeout(poll_s)
        while not stopping and pid_alive(owner):
            _reap(children)
            try:
                connection, _ = listener.accept()
            except (TimeoutError, InterruptedError):
                continue
            pid = os.fork()
            if pid == 0:
                listener.close()
                signal.signal(signal.SIGTERM, signal.SIG_DFL)
                signal.signal(signal.SIGINT, signal.default_int_handler)
                _serve_one(connection)
            connection.close()
            children.add(pid)
    finally:
        listener.close()  # queued jobs that were never taken see the connection close and run themselves
        for name in (path, ready_marker(path)):
            with contextlib.suppress(FileNotFoundError):
                os.unlink(name)
        _reap(children)


def _reap(children: set[int]) -> None:
    for pid in list(children):
        with contextlib.suppress(ChildProcessError):
            done, _ = os.waitpid(pid, os.WNOHANG)
            if not done:
                continue
        children.discard(pid)


# --- started and stopped by the Snakefile ----------------------------------------------------


class Handle:
    """A started worker: its process and the directory of its socket."""

    def __init__(self, process: subprocess.Popen, directory: str) -> None:
        self.process, self.directory = process, directory

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.process.wait(timeout=10)
        if self.process.poll() is None:
            self.process.kill()
        shutil.rmtree(self.directory, ignore_errors=True)
        os.environ.pop(SOCKET_ENV, None)


def start(log_path: str | os.PathLike) -> Handle | None:
    """Start this run's worker (called in Snakemake's process); its jobs inherit the socket's name."""
    if not enabled():
        return None
    directory = tempfile.mkdtemp(prefix="sae-difficulty-worker-")
    path = os.path.join(directory, "worker.sock")
    Path(log_path).parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "a") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", __name__, "--socket", path, "--owner", str(os.getpid())],
            stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
    # Jobs start once onstart returns: wait until the worker serves, so that no job pays the
    # imports beside it (both would then be slower). Past the deadline jobs queue on its socket.
    deadline = time.monotonic() + _READY_WAIT_S
    while not os.path.exists(ready_marker(path)) and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    os.environ[SOCKET_ENV] = path
    return Handle(process, directory)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--socket", required=True, help="Unix socket path to serve on")
    parser.add_argument("--owner", type=int, required=True, help="exit when this process (Snakemake) is gone")
    parser.add_argument("--no-preload", action="store_true", help="serve without importing the stages first (tests)")
    args = parser.parse_args(argv)
    serve(args.socket, args.owner, modules=not args.no_preload)


if __name__ == "__main__":
    main()
