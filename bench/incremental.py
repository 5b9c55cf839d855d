"""Item 4: the cost of an incremental re-run on the CI config.

On a workflow copy whose CI run is complete (made here unless ``--workdir`` already
holds one):

1. planning time of a no-op ``snakemake -n`` (median of ``--repeats``), against the
   same for a one-rule toy workflow in a directory beside it (ratio = how much the
   study's parse, config validation, node plan and DAG cost over Snakemake's own
   start-up);
2. jobs planned after changing one probe parameter (``probe.n_boot``): only probe
   nodes and what is downstream of them may appear;
3. that change is run; then the original config is planned again: no store job;
4. jobs planned after changing one SAE parameter (``sae.k``): only SAE nodes and what
   is downstream; run; revert: no store job.

``publish`` (the human-facing copies under ``results/``) is not a store node: after a
revert it may refresh, and it is reported apart (``view_jobs``).

    python bench/incremental.py                     # full CI config
    python bench/incremental.py --no-llm            # TSFM leg only
    python bench/incremental.py --from-run /tmp/sae-bench/e2e/ci-c2   # start from a copy of a finished run
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import benchlib  # noqa: E402

VIEW_RULES = {"publish", "all", "paper"}
TOY_SNAKEFILE = 'rule toy:\n    output:\n        "toy.txt",\n    shell:\n        "echo toy > {output}"\n'

#: Which stages each change may touch: the changed stage and everything downstream of it.
PROBE_DOWNSTREAM = {"probe", "causal", "selective", "synthesis"}
SAE_DOWNSTREAM = {"sae", "sae_quality", "sae_stability", "codes", "probe", "causal", "selective", "synthesis"}


def dry_run(workdir: Path, configfiles: list[str]) -> tuple[float, dict[str, int]]:
    started = time.perf_counter()
    result = benchlib.snakemake(["-n", "--cores", "1", "--configfile", *configfiles], cwd=workdir, timeout=600)
    return time.perf_counter() - started, benchlib.planned_jobs(result.stdout + result.stderr)


def split_jobs(jobs: dict[str, int]) -> dict[str, Any]:
    store = {rule: n for rule, n in jobs.items() if rule not in VIEW_RULES}
    return {"store_jobs": store, "view_jobs": {r: n for r, n in jobs.items() if r in VIEW_RULES}, "n_store_jobs": sum(store.values())}


def median_dry_run(workdir: Path, configfiles: list[str], repeats: int) -> tuple[list[float], dict[str, int]]:
    times, jobs = [], {}
    for _ in range(repeats):
        seconds, jobs = dry_run(workdir, configfiles)
        times.append(round(seconds, 3))
    return times, jobs


def toy_planning(root: Path, repeats: int) -> list[float]:
    toy = root / "toy"
    toy.mkdir(parents=True, exist_ok=True)
    (toy / "Snakefile").write_text(TOY_SNAKEFILE)
    benchlib.snakemake(["--cores", "1"], cwd=toy)
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        result = benchlib.snakemake(["-n", "--cores", "1"], cwd=toy)
        times.append(round(time.perf_counter() - started, 3))
        assert not benchlib.planned_jobs(result.stdout + result.stderr), "the toy workflow should have nothing to do"
    return times


def change(workdir: Path, base: list[str], name: str, override: str, allowed: set[str]) -> dict[str, Any]:
    """Plan a one-parameter change, run it, then plan the original config again."""
    (workdir / f"{name}.yaml").write_text(override)
    changed = [*base, f"{name}.yaml"]
    plan_s, jobs = dry_run(workdir, changed)
    planned = split_jobs(jobs)
    started = time.perf_counter()
    benchlib.snakemake(["--cores", "2", "--configfile", *changed], cwd=workdir)
    run_s = time.perf_counter() - started
    revert_s, revert_jobs = dry_run(workdir, base)
    reverted = split_jobs(revert_jobs)
    unexpected = sorted(set(planned["store_jobs"]) - allowed)
    return {
        "override": override.strip(),
        "planned": planned,
        "only_downstream": not unexpected and planned["n_store_jobs"] > 0,
        "unexpected_stages": unexpected,
        "plan_s": round(plan_s, 3),
        "rerun_wall_s": round(run_s, 2),
        "after_revert": reverted,
        "revert_plans_zero_store_jobs": reverted["n_store_jobs"] == 0,
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--from-run", type=Path, default=None, help="a finished CI run (a workflow copy) to start from; copied, never changed")
    parser.add_argument("--no-llm", action="store_true", help="TSFM leg only (llm.enabled: false)")
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args(argv)
    load_before = benchlib.loadavg()
    root = Path("/tmp/sae-bench/incremental")
    base = ["config/ci.yaml"] + (["bench_overrides.yaml"] if args.no_llm else [])
    workdir = root / ("ci-tsfm" if args.no_llm else "ci")
    full_run_s = None
    if args.from_run is not None:
        if workdir.exists():
            shutil.rmtree(workdir)
        shutil.copytree(args.from_run, workdir, symlinks=True)
    if not (workdir / "Snakefile").exists():
        benchlib.copy_workflow(workdir, {"bench_overrides.yaml": "llm: {enabled: false}\n"})
        started = time.perf_counter()
        benchlib.snakemake(["--cores", "2", "--configfile", *base], cwd=workdir)
        full_run_s = round(time.perf_counter() - started, 2)
    elif args.no_llm and not (workdir / "bench_overrides.yaml").exists():
        (workdir / "bench_overrides.yaml").write_text("llm: {enabled: false}\n")
    # Bring the copy's views up to date first, so the no-op really has nothing to do.
    benchlib.snakemake(["--cores", "1", "--configfile", *base], cwd=workdir)
    noop_times, noop_jobs = median_dry_run(workdir, base, args.repeats)
    toy_times = toy_planning(root, args.repeats)
    noop = statistics.median(noop_times)
    toy = statistics.median(toy_times)
    print(f"no-op dry run {noop:.2f} s (jobs {noop_jobs}); one-rule toy {toy:.2f} s; ratio {noop / toy:.2f}", file=sys.stderr)
    probe = change(workdir, base, "bench_probe_change", "probe: {n_boot: 300}\n", PROBE_DOWNSTREAM)
    print(f"probe change: {probe['planned']}; after revert {probe['after_revert']}", file=sys.stderr)
    sae = change(workdir, base, "bench_sae_change", "sae: {k: 4}\n", SAE_DOWNSTREAM)
    print(f"sae change: {sae['planned']}; after revert {sae['after_revert']}", file=sys.stderr)
    benchlib.write_result(
        "incremental" + ("_tsfm" if args.no_llm else ""),
        {
            "configfiles": base,
            "full_run_wall_s": full_run_s,
            "noop_dry_run": {
                "command": f"snakemake -n --cores 1 --configfile {' '.join(base)}",
                "seconds": noop_times,
                "median_s": round(noop, 3),
                "jobs": noop_jobs,
            },
            "toy_dry_run": {"command": "snakemake -n --cores 1 (one rule, output present)", "seconds": toy_times, "median_s": round(toy, 3)},
            "noop_over_toy": round(noop / toy, 3),
            "probe_change": probe,
            "sae_change": sae,
        },
        load_before,
    )


if __name__ == "__main__":
    main()
