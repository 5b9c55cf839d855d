"""Shared helpers for the benchmarks in ``bench/``: machine facts, paired timing, peak
memory of a child process, the CPU's matmul FLOP rate, workflow copies and result files.

Why paired timing: the build machines are shared and noisy (other jobs come and go),
so an absolute time says little. Every benchmark times its subject and its reference
back to back, alternating which goes first, and reports the median of the per-pair
ratios: load that drifts slowly hits both halves of a pair alike and cancels.

Nothing here is in the library: these are measurement tools, not part of the study.
"""

from __future__ import annotations

import json
import os
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np

BENCH_DIR = Path(__file__).resolve().parent
REPO = BENCH_DIR.parent
RESULTS_DIR = BENCH_DIR / "results"

#: What a copy of the workflow needs to run (``src`` stays out on purpose: the rule
#: scripts import the installed, editable ``sae_difficulty``, and so does the copy).
WORKFLOW_PARTS = ("Snakefile", "rules", "scripts", "config", "resources", "envs", "profiles", "report", "paper")

_VERSIONED = ("torch", "numpy", "zarr", "sae-lens", "transformer-lens", "transformers", "chronos-forecasting", "snakemake")


def loadavg() -> list[float]:
    """The 1, 5 and 15 minute load averages (other jobs on the machine show up here)."""
    return [round(x, 2) for x in os.getloadavg()]


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def machine_info() -> dict[str, Any]:
    """CPU, cores, memory, Python and library versions: what a number depends on."""
    versions = {}
    for name in _VERSIONED:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    try:
        mem_total_kb = int(next(ln for ln in Path("/proc/meminfo").read_text().splitlines() if ln.startswith("MemTotal")).split()[1])
    except (OSError, StopIteration):
        mem_total_kb = 0
    info = {
        "cpu": cpu_model(),
        "cores": os.cpu_count(),
        "memory_gib": round(mem_total_kb / 2**20, 1),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "versions": versions,
        "gpu": None,
    }
    if "torch" in sys.modules:
        import torch

        if torch.cuda.is_available():
            info["gpu"] = torch.cuda.get_device_name(0)
    return info


def write_result(name: str, payload: dict[str, Any], load_before: Sequence[float]) -> Path:
    """``bench/results/<name>.json`` with the payload, the machine and the load around the run."""
    from sae_difficulty.utils.io import write_json

    document = {
        "benchmark": name,
        "machine": machine_info(),
        "loadavg_before": list(load_before),
        "loadavg_after": loadavg(),
        **payload,
    }
    path = write_json(RESULTS_DIR / f"{name}.json", document)
    print(f"wrote {path.relative_to(REPO)}", file=sys.stderr)
    return path


# --------------------------------------------------------------------------- timing


def timed(fn: Callable[[], Any]) -> float:
    started = time.perf_counter()
    fn()
    return time.perf_counter() - started


def interleaved_times(variants: dict[str, Callable[[], Any]], reference: str, repeats: int, warmup: int = 1) -> dict[str, Any]:
    """Time every variant once per round, ``repeats`` rounds, rotating which goes first,
    after ``warmup`` untimed rounds. For each variant: its seconds, their median, and
    ``time_ratio`` = the median over rounds of (its time / the reference's time in the
    same round); a throughput ratio is its inverse.
    """
    names = list(variants)
    if reference not in variants:
        raise ValueError(f"reference {reference!r} is not one of {names}")
    for _ in range(warmup):
        for name in names:
            variants[name]()
    seconds: dict[str, list[float]] = {name: [] for name in names}
    for round_index in range(repeats):
        shift = round_index % len(names)
        for name in names[shift:] + names[:shift]:
            seconds[name].append(timed(variants[name]))
    result = {}
    for name in names:
        ratios = [s / r for s, r in zip(seconds[name], seconds[reference])]
        result[name] = {
            "seconds": [round(x, 5) for x in seconds[name]],
            "median_s": statistics.median(seconds[name]),
            "time_ratio": statistics.median(ratios),
            "time_ratio_min_max": [min(ratios), max(ratios)],
        }
    return result


def paired_times(subject: Callable[[], Any], reference: Callable[[], Any], repeats: int, warmup: int = 1) -> dict[str, Any]:
    """:func:`interleaved_times` for one subject against one reference, flattened:
    ``subject_median_s``, ``reference_median_s``, ``time_ratio`` (subject / reference)."""
    timing = interleaved_times({"subject": subject, "reference": reference}, "reference", repeats, warmup)
    return {
        "subject_s": timing["subject"]["seconds"],
        "reference_s": timing["reference"]["seconds"],
        "subject_median_s": timing["subject"]["median_s"],
        "reference_median_s": timing["reference"]["median_s"],
        "time_ratio": timing["subject"]["time_ratio"],
        "time_ratio_min_max": timing["subject"]["time_ratio_min_max"],
    }


def matmul_gflops(threads: int = 1, n: int = 512, seconds: float = 1.5) -> float:
    """Sustained float32 GFLOP/s of a plain square matmul in torch on ``threads`` threads:
    the forward-pass FLOP bound of this CPU (a transformer forward is mostly matmuls)."""
    import torch

    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        a = torch.randn(n, n)
        b = torch.randn(n, n)
        out = torch.empty(n, n)
        for _ in range(3):
            torch.mm(a, b, out=out)
        best = 0.0
        deadline = time.perf_counter() + seconds
        while time.perf_counter() < deadline:
            started = time.perf_counter()
            for _ in range(5):
                torch.mm(a, b, out=out)
            elapsed = time.perf_counter() - started
            best = max(best, 5 * 2 * n**3 / elapsed / 1e9)
        return best
    finally:
        torch.set_num_threads(previous)


_BUSY_LOOP = "import time; t = time.perf_counter(); x = 0\nfor i in range(12_000_000): x += i\nprint(time.perf_counter() - t)"


def parallel_capacity(workers: int = 2) -> float:
    """How many cores this process can actually get right now: ``workers`` x the time of
    one CPU-bound loop alone / the time of ``workers`` copies of it at once. On an idle
    2-core machine it is about 2; other jobs on the machine pull it towards 1."""

    def run(n: int) -> float:
        processes = [subprocess.Popen([sys.executable, "-c", _BUSY_LOOP], stdout=subprocess.PIPE, text=True) for _ in range(n)]
        return max(float(p.communicate()[0]) for p in processes)

    alone = run(1)
    together = run(workers)
    return round(workers * alone / together, 2)


# --------------------------------------------------------------------------- memory


def run_child(code: str, args: Sequence[str] = (), timeout: float = 1800, env: dict[str, str] | None = None) -> dict[str, Any]:
    """Run ``python -c code args...`` in a fresh interpreter (so its peak memory is its
    own) and return its last stdout line parsed as JSON; the child reports its peak RSS
    itself with :func:`self_peak_rss_mb`."""
    result = subprocess.run(
        [sys.executable, "-c", code, *args],
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        cwd=REPO,
        timeout=timeout,
    )
    if result.returncode != 0:
        raise RuntimeError(f"child failed ({result.returncode}):\n{result.stderr[-3000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def self_peak_rss_mb() -> float:
    """This process's peak resident set size so far, in MiB: ``VmHWM`` from
    ``/proc/self/status`` (reset by exec, unlike ``ru_maxrss``, which a child inherits
    from the parent it was forked from)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


# --------------------------------------------------------------------------- workflow


def copy_workflow(dest: Path, extra_configs: dict[str, str] | None = None) -> Path:
    """A fresh copy of the workflow under ``dest`` (results/, logs/ and the store land
    there, never in the repository); ``extra_configs`` are written as small YAML files."""
    dest = Path(dest)
    if dest.exists():
        shutil.rmtree(dest)
    dest.mkdir(parents=True)
    for part in WORKFLOW_PARTS:
        source = REPO / part
        if source.is_dir():
            shutil.copytree(source, dest / part, ignore=shutil.ignore_patterns("generated", "build", "__pycache__"))
        elif source.is_file():
            shutil.copy2(source, dest / part)
    for name, text in (extra_configs or {}).items():
        (dest / name).write_text(text)
    return dest


def snakemake(args: Sequence[str], cwd: Path, timeout: float = 3600, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """Run the venv's Snakemake in ``cwd`` (``env``: extra variables); raise with the tail of its output on failure."""
    env = {**os.environ, "PYTHONHASHSEED": "0", "HF_HUB_OFFLINE": "1", **(env or {})}
    result = subprocess.run(
        [sys.executable, "-m", "snakemake", *args], cwd=cwd, capture_output=True, text=True, env=env, timeout=timeout
    )
    if result.returncode != 0:
        raise RuntimeError(f"snakemake {' '.join(args)} failed ({result.returncode}):\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}")
    return result


def planned_jobs(output: str) -> dict[str, int]:
    """Rule -> jobs from a dry run's 'Job stats' table (the parser the tests use)."""
    sys.path.insert(0, str(REPO))
    from tests.conftest import planned_jobs as parse

    return parse(output)


def summarize(values: Sequence[float]) -> dict[str, float]:
    array = np.asarray(values, dtype=float)
    return {"median": float(np.median(array)), "min": float(array.min()), "max": float(array.max())}
