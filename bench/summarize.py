"""Write the summary tables of ``bench/README.md`` from ``bench/results/*.json``.

The tables sit between ``<!-- summary:start -->`` and ``<!-- summary:end -->``; this
script replaces that block, so every number in the README is one the JSON holds.

    python bench/summarize.py           # rewrite the block in bench/README.md
    python bench/summarize.py --print   # print it instead
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import benchlib  # noqa: E402

START, END = "<!-- summary:start -->", "<!-- summary:end -->"


def load(name: str) -> dict[str, Any] | None:
    path = benchlib.RESULTS_DIR / f"{name}.json"
    return json.loads(path.read_text()) if path.exists() else None


def verdict(value: float | None, target: float) -> str:
    if value is None:
        return "-"
    return "met" if value >= target else "**missed**"


def fmt(value: Any, digits: int = 2) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:,.{digits}f}"
    return f"{value:,}" if isinstance(value, int) else str(value)


def load_note(doc: dict[str, Any]) -> str:
    return f"load {doc['loadavg_before'][0]}→{doc['loadavg_after'][0]}"


def extraction_rows() -> list[str]:
    """Item 1 rows from ``extraction.json`` (both modalities) or the per-modality files.

    Files written by earlier versions of ``extraction.py`` carry other variants (e.g. no
    ``forward_to_layer`` for TSFM); only the ratios a file holds are shown."""
    rows = []
    for name in ("extraction", "extraction_tsfm", "extraction_llm"):
        doc = load(name)
        if doc is None:
            continue
        command = doc["command"]
        for modality in ("tsfm", "llm"):
            for key, r in sorted(doc.get(modality, {}).items()):
                unit = "windows" if modality == "tsfm" else "examples"
                ratio = r["ratio_extract_vs_forward"]
                line = (
                    f"| 1 | {modality} {key}: extraction {fmt(r['extract']['tokens_per_s'], 0)} tokens/s, "
                    f"{fmt(r['extract'][f'{unit}_per_s'], 1)} {unit}/s; bare forward {fmt(r['forward']['tokens_per_s'], 0)} tokens/s "
                    f"| **{fmt(ratio)}** (≥ 0.8) | {verdict(ratio, 0.8)} "
                )
                # The matmul bound: the best of the rates measured before and after the run.
                bound = max(doc["matmul_gflop_s_1thread"], doc.get("matmul_gflop_s_1thread_after", 0.0))
                notes = [f"FLOP fraction of the 1-thread matmul ({fmt(bound, 0)} GFLOP/s): {fmt(r['extract']['gflop_s'] / bound, 3)}"]
                labels = {
                    "forward_to_layer": "vs forward stopped at the layer",
                    "forward_tasks_order": "vs full forward on tasks-order batches",
                }
                notes += [f"{label} {fmt(r[f'ratio_extract_vs_{ref}'])}" for ref, label in labels.items() if f"ratio_extract_vs_{ref}" in r]
                if "padded_tokens" in r and "padded_tokens_tasks_order" in r:
                    notes.append(f"padded positions {r['padded_tokens']:,} (tasks order {r['padded_tokens_tasks_order']:,})")
                rows.append(line + f"| {'; '.join(notes)}; {load_note(doc)} | `{command}` |")
    return rows


def sae_rows() -> list[str]:
    doc = load("sae_training")
    if doc is None:
        return []
    rows = []
    for shape, r in doc["throughput"].items():
        ratio = r["ratio_stream_vs_memory"]
        rows.append(
            f"| 2 | SAE training, {shape} shape (d={r['shape']['d']}, x{r['shape']['expansion']}, batch {r['shape']['batch_size']}): "
            f"streamed {fmt(r['tokens_per_s']['stream'], 0)} tokens/s, in-memory {fmt(r['tokens_per_s']['memory'], 0)} "
            f"| **{fmt(ratio)}** (≥ 0.9) | {verdict(ratio, 0.9)} | loader alone ms/batch: {r['loader_ms_per_batch']}; {load_note(doc)} | `{doc['command']}` |"
        )
    m = doc["peak_memory"]
    rows.append(
        f"| 2 | peak RSS, cache {m['rows']['1x']:,} → {m['rows']['4x']:,} rows ({m['data_mb']['1x']} → {m['data_mb']['4x']} MiB): "
        f"streamed {fmt(m['stream']['1x']['peak_rss_mb'], 0)} → {fmt(m['stream']['4x']['peak_rss_mb'], 0)} MiB, "
        f"in-memory {fmt(m['memory']['1x']['peak_rss_mb'], 0)} → {fmt(m['memory']['4x']['peak_rss_mb'], 0)} MiB "
        f"| +{m['stream']['growth_mb']} MiB vs +{m['memory']['growth_mb']} MiB | {'met' if m['stream_bounded'] else '**missed**'} "
        f"| streaming buffer peak {m['stream']['4x'].get('max_rows_buffered')} rows | `{doc['command']}` |"
    )
    return rows


def cache_rows() -> list[str]:
    doc = load("cache_read")
    if doc is None:
        return []
    rows = []
    for key, r in doc["at_project_chunking"].items():
        best = doc["best_chunking"][key]
        best_into = doc["best_chunking_into_buffer"][key]
        rows.append(
            f"| 3 | zarr read, {key.replace('_', ', ')} cache, {doc['project_chunk_rows']}-row chunks ({r['chunk_mib']} MiB): "
            f"zarr {fmt(r['zarr_mb_s'], 0)} MB/s, memmap {fmt(r['memmap_mb_s'], 0)} MB/s "
            f"| **{fmt(r['ratio'])}** (≥ 0.5) | {verdict(r['ratio'], 0.5)} "
            f"| best chunking {best['chunk_rows']} rows: {fmt(best['ratio'])}; decoding into the buffer: {fmt(r['ratio_into_buffer'])} "
            f"(best {best_into['chunk_rows']} rows: {fmt(best_into['ratio'])}); {load_note(doc)} | `{doc['command']}` |"
        )
    for r in doc.get("stream", []):
        rows.append(
            f"| 3 | `stream_batches` one epoch, d={r['d']}: zarr {fmt(r['zarr_stream_mb_s'], 0)} MB/s, memmap {fmt(r['memmap_stream_mb_s'], 0)} MB/s "
            f"| {fmt(r['ratio'])} | (context) | shuffle and batching included | `{doc['command']}` |"
        )
    return rows


def incremental_rows() -> list[str]:
    rows = []
    for name in ("incremental", "incremental_tsfm"):
        doc = load(name)
        if doc is None:
            continue
        label = "CI config" + (" (TSFM leg)" if name.endswith("_tsfm") else "")
        noop = doc["noop_dry_run"]
        rows.append(
            f"| 4 | {label}: no-op `snakemake -n` {fmt(noop['median_s'])} s; one-rule toy {fmt(doc['toy_dry_run']['median_s'])} s "
            f"| **{fmt(doc['noop_over_toy'])}** × toy | {'met (nothing planned)' if not noop['jobs'] else '**missed**'} "
            f"| {load_note(doc)} | `{noop['command']}` |"
        )
        for change in ("probe_change", "sae_change"):
            c = doc[change]
            rows.append(
                f"| 4 | {label}: `{c['override']}` plans {c['planned']['store_jobs']} (+ views {c['planned']['view_jobs']}); "
                f"re-run {fmt(c['rerun_wall_s'], 0)} s | {c['planned']['n_store_jobs']} store jobs | "
                f"{'met (only downstream)' if c['only_downstream'] else '**missed**'} | after revert: "
                f"{c['after_revert']['n_store_jobs']} store jobs ({'met' if c['revert_plans_zero_store_jobs'] else '**missed**'}), "
                f"views {c['after_revert']['view_jobs']} | `python bench/incremental.py` |"
            )
    return rows


def end_to_end_rows() -> tuple[list[str], list[str]]:
    rows, stage_lines = [], []
    for name in ("end_to_end_ci", "end_to_end_ci_tsfm", "end_to_end_config", "end_to_end_config_tsfm", "end_to_end_ci_worker"):
        doc = load(name)
        if doc is None:
            continue
        label = f"{doc['config']} config" + (" (TSFM leg)" if doc["tsfm_only"] else "")
        walls = ", ".join(f"--cores {r['cores']}: {fmt(r['wall_s'], 0)} s" for r in doc["runs"])
        capacity = ", ".join(fmt(r.get("parallel_capacity_before")) for r in doc["runs"] if r.get("parallel_capacity_before") is not None)
        for key, s in doc["speedups"].items():
            if key == "worker_on_vs_off":
                rows.extend(worker_rows(label, doc, s))
                continue
            rows.append(
                f"| 5 | {label}: {walls} | **{fmt(s['median'])}** (per round {s['per_round']}) | see note "
                f"| ceiling node time / critical path: {', '.join(fmt(r['speedup_ceiling']) for r in doc['runs'] if r['cores'] == 1)}; "
                f"cores actually available (parallel capacity): {capacity or '-'}; {load_note(doc)} | `{doc['runs'][0]['command']}` |"
            )
        if not doc["speedups"]:
            rows.append(f"| 5 | {label}: {walls} | - | - | {load_note(doc)} | `{doc['runs'][0]['command']}` |")
        run = min(doc["runs"], key=lambda r: (r["cores"], r.get("worker", "on") != "on"))
        stage_lines.append(f"\n{label}, `{run['command']}` (wall {fmt(run['wall_s'], 0)} s; start-up of jobs {fmt(run['startup_s_total'], 0)} s of {fmt(run['job_s_total'], 0)} s job time):\n")
        stage_lines.append("| stage | nodes | node wall s (sum) | largest node s | job s (sum, incl. start-up) | peak RSS MiB |")
        stage_lines.append("|---|---|---|---|---|---|")
        for stage, s in run["stages"].items():
            stage_lines.append(
                f"| {stage} | {s['nodes']} | {fmt(s['wall_s_sum'], 1)} | {fmt(s['wall_s_max'], 1)} | {fmt(s.get('job_s_sum'), 1)} | {fmt(s['max_rss_mb'], 0)} |"
            )
    return rows, stage_lines


def worker_rows(label: str, doc: dict[str, Any], comparison: dict[str, Any]) -> list[str]:
    """The warm worker's effect (``end_to_end.py --worker off on``): per pair of runs, the
    start-up share of job time with and without it and the on/off ratios of start-up and wall."""
    rows = []
    for pair in comparison["per_run_pair"]:
        runs = {r["worker"]: r for r in doc["runs"] if (r["round"], r["cores"]) == (pair["round"], pair["cores"])}
        share = pair["startup_share"]
        rows.append(
            f"| 5 | {label}, --cores {pair['cores']}, warm worker off → on: start-up {fmt(runs['off']['startup_s_total'], 0)} → "
            f"{fmt(runs['on']['startup_s_total'], 0)} s of {fmt(runs['off']['job_s_total'], 0)} → {fmt(runs['on']['job_s_total'], 0)} s "
            f"job time ({fmt(100 * share['off'], 1)} % → {fmt(100 * share['on'], 1)} %); wall {fmt(runs['off']['wall_s'], 0)} → "
            f"{fmt(runs['on']['wall_s'], 0)} s{_worker_import_note(runs['on'])} | **{fmt(pair['startup_ratio_on_off'])}** start-up on/off, "
            f"**{fmt(pair['wall_ratio_on_off'])}** wall on/off | start-up ≤ 10 % of job time: "
            f"{'met' if share['on'] <= 0.10 else '**missed**'} | {load_note(doc)} | `python bench/end_to_end.py --config {doc['config']} "
            f"--cores {pair['cores']} --worker off on` |"
        )
    return rows


def _worker_import_note(run: dict[str, Any]) -> str:
    """The worker's one-time import before the first job (in the wall time, in no job's time)."""
    seconds = run.get("worker_import_s")
    return "" if seconds is None else f", of which the worker's one-time import before the first job {fmt(seconds, 1)} s"


#: The plans ``startup.py`` records, in display order.
PLAN_LABELS = {"config": "default config", "ci": "CI config"}


def _weighted_import_s(doc: dict[str, Any], jobs: dict[str, int], unit: str) -> float:
    """Sum over a plan's rules of jobs x that stage's import time (``unit``: cpu_s, or cpu_over_torch)."""
    return sum(n * doc["stages"][rule][unit] for rule, n in jobs.items() if rule in doc["stages"])


def startup_rows() -> tuple[list[str], list[str]]:
    """Item 5, start-up per stage: importing each stage module in a fresh interpreter
    (``startup.py``), before (``startup_before.json``) and after (``startup.json``) a change.

    Both files are weighed by the plans the "after" file recorded (jobs per rule of the
    default and CI configs), so the two sums count the same jobs. CPU seconds depend on
    the machine's load; the ratio to ``import torch`` measured in the same run does not."""
    after, before = load("startup"), load("startup_before")
    if after is None:
        return [], []
    rows = []
    torch_after = after["references"]["torch"]["cpu_s"]
    plans = {name: after.get("planned_jobs", {})[name] for name in PLAN_LABELS if name in after.get("planned_jobs", {})}
    for plan, jobs in plans.items():
        covered = {rule: n for rule, n in jobs.items() if rule in after["stages"]}
        line = f"| 5 | start-up, {PLAN_LABELS[plan]} plan ({sum(covered.values())} store jobs): Σ jobs × stage import CPU "
        if before is None:
            rows.append(line + f"{fmt(_weighted_import_s(after, covered, 'cpu_s'), 0)} s | - | - | {load_note(after)} | `{after['command']}` |")
            continue
        cpu_before, cpu_after = _weighted_import_s(before, covered, "cpu_s"), _weighted_import_s(after, covered, "cpu_s")
        torch_before = before["references"]["torch"]["cpu_s"]
        in_torch_before = _weighted_import_s(before, covered, "cpu_over_torch")
        in_torch_after = _weighted_import_s(after, covered, "cpu_over_torch")
        rows.append(
            line + f"before {fmt(cpu_before, 0)} s, after {fmt(cpu_after, 0)} s "
            f"| **{fmt(in_torch_after / in_torch_before)}** after/before, in units of `import torch` ({fmt(in_torch_before, 0)} → "
            f"{fmt(in_torch_after, 0)} torch imports) | (context) | `import torch` {fmt(torch_before)} s before, {fmt(torch_after)} s after; "
            f"before {load_note(before)}, after {load_note(after)} | `{before['command']}`, then `{after['command']}` |"
        )
    before_command = "" if before is None else f"; before: `{before['command']}`"
    table = [
        "",
        "Start-up per stage: CPU seconds to import the stage module (and the node runner) in a fresh interpreter, median of "
        f"repeats, and its ratio to `import torch` in the same run; jobs per rule in the plans of {', '.join(plans) or '-'}"
        f" (`{after['command']}`{before_command}). The heavy imports listed are those of the module itself; a stage may import more"
        " inside its build (e.g. the backbone's libraries where it loads a model):",
        "",
        "| stage | jobs (" + " / ".join(plans) + ") | before CPU s (× torch) | before: heavy imports | after CPU s (× torch) | after: heavy imports |",
        "|---|---|---|---|---|---|",
    ]
    for stage, a in after["stages"].items():
        b = (before or {}).get("stages", {}).get(stage)
        jobs = " / ".join(str(p.get(stage, 0)) for p in plans.values())
        before_cells = ("-", "-") if b is None else (f"{fmt(b['cpu_s'])} ({fmt(b['cpu_over_torch'])})", ", ".join(b["heavy_modules"]))
        table.append(
            f"| {stage} | {jobs} | {before_cells[0]} | {before_cells[1]} | {fmt(a['cpu_s'])} ({fmt(a['cpu_over_torch'])}) "
            f"| {', '.join(a['heavy_modules'])} |"
        )
    return rows, table


def gpu_rows() -> list[str]:
    rows = []
    for path in sorted(benchlib.RESULTS_DIR.glob("gpu_paper_scale*.json")):
        doc = json.loads(path.read_text())
        e, t, s = doc["extraction"], doc["task_extraction"], doc["sae_training"]
        rows.append(
            f"| 6 | {doc['size']} on {doc['device']} ({doc['parameters'] / 1e6:.1f}M parameters): SAE-activation extraction "
            f"{fmt(e['extract']['tokens_per_s'], 0)} tokens/s vs bare forward {fmt(e['forward']['tokens_per_s'], 0)} | "
            f"{fmt(e['ratio_extract_vs_forward'])} (vs forward to the layer {fmt(e['ratio_extract_vs_forward_to_layer'])}) | "
            f"{'proof of run only' if doc['device'] != 'cuda' else verdict(e['ratio_extract_vs_forward'], 0.8)} | task extraction "
            f"{fmt(t['ratio_extract_vs_forward'])} × forward; SAE streamed/in-device-memory {fmt(s['ratio_stream_vs_memory'])} "
            f"({fmt(s['stream_tokens_per_s'], 0)} tokens/s, {fmt(s['stream_vs_model_forward'])} × the model's forward) | `{doc['command']}` |"
        )
    return rows


def build() -> str:
    lines = [
        START,
        "",
        "| # | what (numbers) | ratio (target) | verdict | notes | command |",
        "|---|---|---|---|---|---|",
        *extraction_rows(),
        *sae_rows(),
        *cache_rows(),
        *incremental_rows(),
    ]
    e2e_rows, stage_lines = end_to_end_rows()
    startup, startup_table = startup_rows()
    lines += [*e2e_rows, *startup, *gpu_rows(), "", "Per-stage wall time (manifests) and peak memory (Snakemake benchmark TSVs):",
              *stage_lines, *startup_table, "", END]  # fmt: skip
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--print", action="store_true", help="print the block instead of rewriting the README")
    args = parser.parse_args(argv)
    block = build()
    if args.print:
        print(block)
        return
    readme = benchlib.BENCH_DIR / "README.md"
    text = readme.read_text()
    if START not in text or END not in text:
        raise SystemExit(f"{readme}: no {START} ... {END} block to replace")
    head, rest = text.split(START, 1)
    _, tail = rest.split(END, 1)
    readme.write_text(head + block + tail)
    print(f"rewrote the summary in {readme}", file=sys.stderr)


if __name__ == "__main__":
    main()
