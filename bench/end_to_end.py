"""Item 5: the whole workflow end to end, ``--cores N`` against ``--cores 1``.

For each requested core count the workflow is copied to a fresh directory under
``--workdir`` (so every run starts from an empty store and nothing lands in the
repository) and run with ``snakemake --cores N --configfile config/<config>.yaml``.
Reported per run: the wall time of the Snakemake process, and per stage the summed
and the largest node wall time (from each node's ``manifest.json``) and the peak
resident memory of its jobs (from the ``benchmark:`` TSVs Snakemake writes under
``results/benchmarks/<stage>/<node>.tsv``). The parallel speedup is
``wall(--cores 1) / wall(--cores N)``; its ceiling is the critical path: the longest
chain of nodes, whose sum is reported too (``critical_path_s``).

    python bench/end_to_end.py --config ci --cores 2 1 --rounds 2   # ABBA: 2,1 then 1,2
    python bench/end_to_end.py --config config --cores 2 --timeout 2400
    python bench/end_to_end.py --config ci --cores 2 --no-llm   # TSFM leg only
    python bench/end_to_end.py --config ci --cores 2 --worker off on   # the warm worker's effect

``--worker off on`` runs each core count with the warm worker off (every job in its own
process, ``SAE_DIFFICULTY_WARM_WORKER=0``) and on (the default), in alternating order, and
reports the ratios on/off of wall time and of job start-up (job time minus node time).
With the worker, Snakemake's benchmark TSV measures the job process that waits for the
worker's child; the child's CPU time and peak RSS come from its line in the job's log.
"""

from __future__ import annotations

import argparse
import csv
import json
import re
import statistics
import sys
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import benchlib  # noqa: E402

NO_LLM = "llm: {enabled: false}\n"
WORKER_IMPORT_LINE = re.compile(r"warm worker [0-9]+: imports took ([0-9.]+) s")
WORKER_LINE = re.compile(r"warm worker child: cpu ([0-9.]+) s, peak RSS ([0-9.]+) MiB")


def stage_table(workdir: Path) -> dict[str, dict[str, Any]]:
    """Per stage: node count; summed and largest node wall time (``wall_time_s`` of the
    manifests: the stage's own work); summed job time and CPU time and the largest peak
    RSS of its jobs (Snakemake's benchmark TSVs: the whole job, Python start-up and
    imports included). ``startup_s_sum`` = job time - node time: what the job spent
    before and after its work."""
    stages: dict[str, dict[str, Any]] = defaultdict(
        lambda: {"nodes": 0, "wall_s_sum": 0.0, "wall_s_max": 0.0, "job_s_sum": 0.0, "cpu_s_sum": 0.0, "max_rss_mb": 0.0}
    )
    for manifest_path in sorted((workdir / "results" / "store").glob("*/*/manifest.json")):
        manifest = json.loads(manifest_path.read_text())
        row = stages[manifest.get("stage", manifest_path.parts[-3])]
        row["nodes"] += 1
        row["wall_s_sum"] += float(manifest.get("wall_time_s", 0.0))
        row["wall_s_max"] = max(row["wall_s_max"], float(manifest.get("wall_time_s", 0.0)))
    for tsv in sorted((workdir / "results" / "benchmarks").glob("*/*.tsv")):
        with open(tsv) as handle:
            for record in csv.DictReader(handle, delimiter="\t"):
                row = stages[tsv.parent.name]
                for key, column in (("job_s_sum", "s"), ("cpu_s_sum", "cpu_time")):
                    try:
                        row[key] += float(record[column])
                    except (KeyError, ValueError):
                        pass
                try:
                    row["max_rss_mb"] = max(row["max_rss_mb"], float(record["max_rss"]))
                except (KeyError, ValueError):
                    pass
    for stage, row in stages.items():
        _worker_children(workdir / "logs" / stage, row)
        row["startup_s_sum"] = max(0.0, row["job_s_sum"] - row["wall_s_sum"])
    return {stage: {k: round(v, 3) if isinstance(v, float) else v for k, v in row.items()} for stage, row in sorted(stages.items())}


def _worker_children(log_dir: Path, row: dict[str, Any]) -> None:
    """Jobs built in the warm worker: their child's CPU time replaces the waiting job process's,
    and its peak RSS counts (the TSV saw only the job process)."""
    for log in sorted(log_dir.glob("*.log")):
        match = WORKER_LINE.search(log.read_text(errors="replace"))
        if match:
            row["worker_jobs"] = row.get("worker_jobs", 0) + 1
            row["cpu_s_sum"] += float(match.group(1))
            row["max_rss_mb"] = max(row["max_rss_mb"], float(match.group(2)))


def _read(path: Path) -> str:
    return path.read_text(errors="replace") if path.exists() else ""


def critical_path_s(workdir: Path) -> float:
    """Longest chain of node wall times through the store's parent links (spec.json)."""
    walls: dict[str, float] = {}
    parents: dict[str, list[str]] = {}
    for manifest_path in (workdir / "results" / "store").glob("*/*/manifest.json"):
        node = manifest_path.parent.name
        walls[node] = float(json.loads(manifest_path.read_text()).get("wall_time_s", 0.0))
        spec = json.loads((manifest_path.parent / "spec.json").read_text())
        parents[node] = list(spec.get("parents", {}).values())
    memo: dict[str, float] = {}

    def longest(node: str) -> float:
        if node not in memo:
            memo[node] = walls.get(node, 0.0) + max((longest(p) for p in parents.get(node, []) if p in walls), default=0.0)
        return memo[node]

    return round(max((longest(n) for n in walls), default=0.0), 3)


def totals(stages: dict[str, dict[str, Any]]) -> dict[str, float]:
    return {
        "node_wall_s_total": round(sum(row["wall_s_sum"] for row in stages.values()), 2),
        "job_s_total": round(sum(row["job_s_sum"] for row in stages.values()), 2),
        "startup_s_total": round(sum(row["startup_s_sum"] for row in stages.values()), 2),
    }


def run_dir(root: Path, config: str, no_llm: bool, cores: int, round_index: int = 0, worker: str = "on") -> Path:
    suffix = f"{f'-r{round_index}' if round_index else ''}{'-noworker' if worker == 'off' else ''}"
    return root / f"{config}{'-tsfm' if no_llm else ''}-c{cores}{suffix}"


def restage(name: str, root: Path) -> None:
    """Recompute the stage tables of a finished result from its runs' work directories."""
    path = benchlib.RESULTS_DIR / f"{name}.json"
    document = json.loads(path.read_text())
    for run in document["runs"]:
        workdir = Path(run.get("workdir") or run_dir(root, document["config"], document["tsfm_only"], run["cores"], run.get("round", 0)))
        run["workdir"] = str(workdir)
        run["stages"] = stage_table(workdir)
        run.update(totals(run["stages"]))
        run["critical_path_s"] = critical_path_s(workdir)
    from sae_difficulty.utils.io import write_json

    write_json(path, document)


def run_once(config: str, cores: int, workdir: Path, no_llm: bool, timeout: float, worker: str = "on") -> dict[str, Any]:
    extra = {"bench_overrides.yaml": NO_LLM} if no_llm else {}
    benchlib.copy_workflow(workdir, extra)
    configfiles = [f"config/{config}.yaml", *extra]
    load_before = benchlib.loadavg()
    capacity_before = benchlib.parallel_capacity()
    started = time.perf_counter()
    benchlib.snakemake(["--cores", str(cores), "--configfile", *configfiles], cwd=workdir, timeout=timeout,
                       env={"SAE_DIFFICULTY_WARM_WORKER": "1" if worker == "on" else "0"})
    wall = time.perf_counter() - started
    stages = stage_table(workdir)
    worker_import = WORKER_IMPORT_LINE.search(_read(workdir / "logs" / "warm_worker.log"))
    return {
        "cores": cores,
        "worker": worker,
        "workdir": str(workdir),
        "configfiles": configfiles,
        "wall_s": round(wall, 2),
        "loadavg_before": load_before,
        "loadavg_after": benchlib.loadavg(),
        "parallel_capacity_before": capacity_before,
        "parallel_capacity_after": benchlib.parallel_capacity(),
        "critical_path_s": critical_path_s(workdir),
        # Once per run, before the first job (onstart waits for it): not in any job's time.
        "worker_import_s": float(worker_import.group(1)) if worker_import else None,
        **totals(stages),
        "stages": stages,
        "command": f"{'SAE_DIFFICULTY_WARM_WORKER=0 ' if worker == 'off' else ''}snakemake --cores {cores} --configfile {' '.join(configfiles)}",
    }


def worker_ratios(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Per (round, cores): the on/off ratios of wall time and job start-up, and each run's start-up share of job time."""
    rows = []
    for (round_index, cores) in sorted({(r["round"], r["cores"]) for r in runs}):
        pair = {r["worker"]: r for r in runs if (r["round"], r["cores"]) == (round_index, cores)}
        share = {w: round(r["startup_s_total"] / max(r["job_s_total"], 1e-9), 4) for w, r in pair.items()}
        rows.append({"round": round_index, "cores": cores, "startup_share": share,
                     "wall_ratio_on_off": round(pair["on"]["wall_s"] / pair["off"]["wall_s"], 3),
                     "startup_ratio_on_off": round(pair["on"]["startup_s_total"] / max(pair["off"]["startup_s_total"], 1e-9), 3)})  # fmt: skip
    return {"per_run_pair": rows}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", default="ci", help="config/<name>.yaml (ci or config)")
    parser.add_argument("--cores", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--no-llm", action="store_true", help="run the TSFM leg only (llm.enabled: false)")
    parser.add_argument("--rounds", type=int, default=1, help="repeat the comparison, alternating the order of core counts")
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/sae-bench/e2e"))
    parser.add_argument("--timeout", type=float, default=3600, help="seconds per Snakemake run")
    parser.add_argument("--worker", nargs="+", choices=("on", "off"), default=["on"],
                        help="the warm worker on (default) and/or off; both: alternating, ratios on/off reported")
    parser.add_argument("--name", default=None, help="result name (default end_to_end_<config>[_tsfm])")
    parser.add_argument("--restage", action="store_true", help="only recompute the stage tables of an existing result")
    args = parser.parse_args(argv)
    name = args.name or f"end_to_end_{args.config}{'_tsfm' if args.no_llm else ''}"
    if args.restage:
        restage(name, args.workdir)
        return
    load_before = benchlib.loadavg()
    runs = []
    for round_index in range(args.rounds):
        # Alternate the order (ABBA...): load that drifts over the run hits both core counts alike.
        settings = [(cores, worker) for cores in args.cores for worker in args.worker]
        order = settings if round_index % 2 == 0 else list(reversed(settings))
        for cores, worker in order:
            workdir = run_dir(args.workdir, args.config, args.no_llm, cores, round_index, worker)
            print(f"round {round_index}: {args.config} with --cores {cores}, worker {worker} in {workdir}", file=sys.stderr)
            run = run_once(args.config, cores, workdir, args.no_llm, args.timeout, worker)
            run["round"] = round_index
            print(f"  wall {run['wall_s']} s, critical path {run['critical_path_s']} s, node total {run['node_wall_s_total']} s", file=sys.stderr)
            runs.append(run)
    for run in runs:
        # The most a perfect scheduler could gain over serial execution of the same nodes.
        run["speedup_ceiling"] = round(run["node_wall_s_total"] / max(run["critical_path_s"], 1e-9), 3)
    speedups: dict[str, Any] = {}
    if set(args.worker) == {"on", "off"}:
        speedups["worker_on_vs_off"] = worker_ratios(runs)
    if 1 in args.cores:
        for cores in args.cores:
            if cores == 1:
                continue
            per_round = []
            for round_index in range(args.rounds):
                walls = {r["cores"]: r["wall_s"] for r in runs if r["round"] == round_index and r["worker"] == args.worker[-1]}
                per_round.append(round(walls[1] / walls[cores], 3))
            speedups[f"cores{cores}_vs_cores1"] = {"per_round": per_round, "median": round(statistics.median(per_round), 3)}
            print(f"--cores {cores} vs --cores 1: parallel speedup {per_round}", file=sys.stderr)
    benchlib.write_result(name, {"config": args.config, "tsfm_only": args.no_llm, "rounds": args.rounds, "runs": runs, "speedups": speedups}, load_before)


if __name__ == "__main__":
    main()
