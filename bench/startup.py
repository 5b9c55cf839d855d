"""Part of item 5: what every workflow job pays before its work starts.

Each rule runs its script in a fresh Python process, which imports the stage module
(and through it torch, transformers, TransformerLens, sae-lens, ...). The end-to-end
benchmark shows this start-up as the gap between a job's time (Snakemake's benchmark
TSV) and its node's own ``wall_time_s`` (manifest). Here each stage module is imported
in a fresh interpreter, ``--repeats`` times, and its CPU time and wall time are
reported against two references measured in the same run: a bare ``python -c pass``
and ``import torch``.

What a run pays is each stage's import times its number of jobs: the jobs per rule of
the default and CI configs' plans (``snakemake -n`` on a workflow copy) are recorded
beside the import times, so ``summarize.py`` can weigh a "before" file and an "after"
file by the same plan.

    python bench/startup.py                          # bench/results/startup.json
    python bench/startup.py --name startup_before    # keep a baseline before a change
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import benchlib  # noqa: E402

#: Every stage module (one per store stage; the rule scripts import exactly these).
STAGES = tuple(
    sorted(p.stem for p in (benchlib.REPO / "src" / "sae_difficulty" / "stages").glob("*.py") if p.stem not in ("__init__", "common"))
)

CHILD = r"""
import json, resource, sys, time
started = time.perf_counter()
for name in sys.argv[1:]:
    __import__(name)
usage = resource.getrusage(resource.RUSAGE_SELF)
heavy = sorted(m for m in ("torch", "transformers", "transformer_lens", "sae_lens", "chronos", "sklearn", "matplotlib", "pandas", "zarr") if m in sys.modules)
print(json.dumps({"wall_s": time.perf_counter() - started, "cpu_s": usage.ru_utime + usage.ru_stime, "heavy_modules": heavy}))
"""


def measure(modules: list[str], repeats: int) -> dict[str, Any]:
    runs = [benchlib.run_child(CHILD, modules) for _ in range(repeats)]
    return {
        "cpu_s": round(statistics.median(r["cpu_s"] for r in runs), 3),
        "wall_s": round(statistics.median(r["wall_s"] for r in runs), 3),
        "heavy_modules": runs[-1]["heavy_modules"],
    }


#: The configs whose plans weigh the per-stage import times (name -> --configfile, None = the default).
PLANS = {"config": None, "ci": "config/ci.yaml"}
PLAN_TARGET = "results/cross_modal_synthesis.md"


def planned_jobs_per_rule(configfile: str | None) -> dict[str, int]:
    """Jobs per rule of a dry run from an empty store, on a copy of the workflow (nothing lands in the repository)."""
    work = benchlib.copy_workflow(Path("/tmp/sae-bench/startup-plan"))
    args = ["-n", PLAN_TARGET] + (["--configfile", configfile] if configfile else [])
    return benchlib.planned_jobs(benchlib.snakemake(args, cwd=work).stdout)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument(
        "--name", default="startup", help="result file bench/results/<name>.json (e.g. startup_before to keep a baseline)"
    )
    parser.add_argument("--no-plans", action="store_true", help="skip the dry runs that count jobs per rule")
    args = parser.parse_args(argv)
    load_before = benchlib.loadavg()
    references = {"python": measure([], args.repeats), "torch": measure(["torch"], args.repeats)}
    stages = {}
    for stage in STAGES:
        stages[stage] = measure(["sae_difficulty.pipeline.runner", f"sae_difficulty.stages.{stage}"], args.repeats)
        stages[stage]["cpu_over_torch"] = round(stages[stage]["cpu_s"] / max(references["torch"]["cpu_s"], 1e-9), 2)
        print(f"{stage:16s} {stages[stage]['cpu_s']:6.2f} s CPU  ({', '.join(stages[stage]['heavy_modules'])})", file=sys.stderr)
    print(f"references: {references}", file=sys.stderr)
    plans = {} if args.no_plans else {name: planned_jobs_per_rule(configfile) for name, configfile in PLANS.items()}
    benchlib.write_result(
        args.name,
        {"command": f"python bench/startup.py --repeats {args.repeats} --name {args.name}", "references": references, "stages": stages,
         "total_cpu_s_one_job_per_stage": round(sum(s["cpu_s"] for s in stages.values()), 2),
         "planned_jobs": plans, "plan_target": PLAN_TARGET},
        load_before,
    )  # fmt: skip


if __name__ == "__main__":
    main()
