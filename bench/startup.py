"""Part of item 5: what every workflow job pays before its work starts.

Each rule runs its script in a fresh Python process, which imports the stage module
(and through it torch, transformers, TransformerLens, sae-lens, ...). The end-to-end
benchmark shows this start-up as the gap between a job's time (Snakemake's benchmark
TSV) and its node's own ``wall_time_s`` (manifest). Here each stage module is imported
in a fresh interpreter, ``--repeats`` times, and its CPU time and wall time are
reported against two references measured in the same run: a bare ``python -c pass``
and ``import torch``.

    python bench/startup.py
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


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)
    load_before = benchlib.loadavg()
    references = {"python": measure([], args.repeats), "torch": measure(["torch"], args.repeats)}
    stages = {}
    for stage in STAGES:
        stages[stage] = measure(["sae_difficulty.pipeline.runner", f"sae_difficulty.stages.{stage}"], args.repeats)
        stages[stage]["cpu_over_torch"] = round(stages[stage]["cpu_s"] / max(references["torch"]["cpu_s"], 1e-9), 2)
        print(f"{stage:16s} {stages[stage]['cpu_s']:6.2f} s CPU  ({', '.join(stages[stage]['heavy_modules'])})", file=sys.stderr)
    print(f"references: {references}", file=sys.stderr)
    benchlib.write_result(
        "startup",
        {"command": f"python bench/startup.py --repeats {args.repeats}", "references": references, "stages": stages,
         "total_cpu_s_one_job_per_stage": round(sum(s["cpu_s"] for s in stages.values()), 2)},
        load_before,
    )  # fmt: skip


if __name__ == "__main__":
    main()
