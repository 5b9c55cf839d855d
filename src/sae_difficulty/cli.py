"""`sae-difficulty`: inspect and maintain the content-addressed store.

A run's config is config/config.yaml with each ``--configfile`` painted over it in
order, exactly as ``snakemake --configfile A B`` layers them; every command that asks
"which nodes does this run reach" resolves its configs the same way.

    sae-difficulty status [--configfile FILE [FILE ...]] [--summary]
    sae-difficulty store ls [--configfile FILE [FILE ...]] ...      (each --configfile = one run)
    sae-difficulty store verify [--remove] [NODE_ID ...]
    sae-difficulty store gc --keep-config FILE [FILE ...] [--keep-config ...] [--min-age HOURS] [--force] [--yes]
"""

from __future__ import annotations

import argparse
import glob
import os
import shutil
import sys
import traceback
from pathlib import Path
from typing import Any

from sae_difficulty.pipeline.config import (
    BASE_CONFIG,
    config_files_label,
    read_config_file,
    resolve_config,
)
from sae_difficulty.pipeline.store import (
    DEFAULT_WRITER_BOUND_S,
    abandoned_leftovers,
    age_s,
    is_complete,
    iter_store,
    live_writers,
    read_owner,
    remove_node,
    snakemake_locks,
    verify_node,
)
from sae_difficulty.pipeline.study import build_plan
from sae_difficulty.utils.errors import InputError, StoreError

DEFAULT_MIN_AGE_H = 1.0

def _human_size(size: int) -> str:
    value = float(size)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{size} B"


def _run_config(overlays: list[str], base: str) -> dict[str, Any]:
    return resolve_config(overlays, base)


def _reach(runs: list[list[str]], base: str) -> tuple[dict[str, list[str]], list[str]]:
    """node id -> labels of the runs that reach it; and the store each run uses, in order."""
    reached: dict[str, list[str]] = {}
    stores = []
    for overlays in runs:
        config = _run_config(overlays, base)
        stores.append(config["store"])
        label = config_files_label(overlays)
        for node_id in build_plan(config).nodes:
            reached.setdefault(node_id, []).append(label)
    return reached, stores


def _shipped_runs() -> list[list[str]]:
    """One run per shipped config: the base alone, and each other config/*.yaml over it."""
    runs: list[list[str]] = [[]]
    for path in sorted(glob.glob("config/*.yaml")):
        if Path(path).resolve() == BASE_CONFIG.resolve():
            continue
        try:
            read_config_file(path)
        except InputError:
            continue  # the schema, or a file that is not a config
        runs.append([path])
    return runs


def _existing_store(path: str | os.PathLike) -> Path:
    store = Path(path)
    if not store.is_dir():
        what = "is not a directory" if store.exists() else "does not exist"
        raise InputError(f"store {store} {what}; pass --store DIR or run from the directory the workflow ran in")
    return store


def _store_of(args: argparse.Namespace, stores: list[str]) -> Path:
    if args.store:
        return _existing_store(args.store)
    if len(set(stores)) > 1:
        raise InputError(f"the configs use different stores {sorted(set(stores))}; pass --store DIR")
    return _existing_store(stores[0])


def cmd_ls(args: argparse.Namespace) -> int:
    runs = args.configfile or _shipped_runs()
    reached, stores = _reach(runs, args.base)
    store = _store_of(args, stores if args.configfile else stores[:1])
    rows = [("stage", "node", "size", "created", "state", "configs")]
    for node in iter_store(store):
        state = "complete" if node.complete else "INCOMPLETE"
        rows.append((node.stage, node.node_id, _human_size(node.size), node.created, state,
                     ",".join(reached.get(node.node_id, [])) or "-"))  # fmt: skip
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip())
    return 0


def cmd_verify(args: argparse.Namespace) -> int:
    store = _existing_store(args.store or _run_config([], args.base)["store"])
    wanted = {name.rsplit("/", 1)[-1] for name in args.nodes}
    bad = checked = 0
    found = set()
    for node in iter_store(store):
        if wanted and node.node_id not in wanted:
            continue
        found.add(node.node_id)
        checked += 1
        problems = verify_node(node.path)
        for problem in problems:
            print(f"FAIL {node.stage}/{node.node_id}: {problem}")
        if problems and args.remove:
            remove_node(node.path)
            print(f"removed {node.stage}/{node.node_id}; the next run rebuilds it")
        bad += bool(problems)
    for node_id in sorted(wanted - found):
        print(f"FAIL {node_id}: no such node in store {store}")
        bad += 1
        checked += 1
    print(f"{checked - bad} of {checked} nodes verify")
    return 1 if bad else 0


def _refusals(store: Path, bound_s: float) -> list[str]:
    """Why deleting now could race a running job: Snakemake locks, live node writers."""
    reasons = []
    locks = snakemake_locks(".")
    if locks:
        reasons.append(f"a Snakemake run holds {len(locks)} lock(s) in {Path('.snakemake/locks').resolve()} "
                       f"(if no run is active, `snakemake --unlock` clears a stale lock)")  # fmt: skip
    writers = live_writers(store, bound_s)
    if writers:
        owner = read_owner(writers[0]) or {}
        who = f"pid {owner.get('pid')} on {owner.get('host')}" if owner else "no owner file yet"
        reasons.append(f"{len(writers)} node writer(s) still running, e.g. {writers[0]} ({who})")
    return reasons


def cmd_gc(args: argparse.Namespace) -> int:
    reached, stores = _reach(args.keep_config, args.base)
    store = _store_of(args, stores)
    bound_s = args.writer_timeout * 3600
    refusals = _refusals(store, bound_s)
    if refusals and args.yes:
        raise InputError(f"refusing to delete: {'; '.join(refusals)}")
    for reason in refusals:
        print(f"note: --yes would refuse: {reason}")
    min_age_s = 0.0 if args.force else args.min_age * 3600
    unreachable = [node for node in iter_store(store) if node.node_id not in reached]
    doomed = [node for node in unreachable if age_s(node.path) >= min_age_s]
    young = [node for node in unreachable if age_s(node.path) < min_age_s]
    stray = abandoned_leftovers(store, bound_s)
    verb = "deleting" if args.yes else "would delete"
    for node in doomed:
        print(f"{verb} {node.stage}/{node.node_id} ({_human_size(node.size)})")
    for node in young:
        print(f"keeping {node.stage}/{node.node_id}: unreachable but younger than --min-age {args.min_age:g} h (--force deletes it)")
    for path in stray:
        print(f"{verb} leftover {path}")
    if args.yes:
        for node in doomed:
            remove_node(node.path)
        for path in stray:
            shutil.rmtree(path, ignore_errors=True)
    kept = sum(1 for _ in iter_store(store))
    runs = ", ".join(config_files_label(overlays) for overlays in args.keep_config)
    done = "deleted" if args.yes else "unreachable (dry run; pass --yes to delete)"
    print(f"{len(doomed)} nodes {done}, {len(young)} unreachable but too young, {kept - (0 if args.yes else len(doomed))} kept"
          f" (runs: {runs})")  # fmt: skip
    return 0


def node_state(path: Path, parent_paths: list[Path]) -> str:
    """done / stale (complete but older than a parent: Snakemake re-runs it) / incomplete / missing."""
    if not path.exists():
        return "missing"
    if not is_complete(path):
        return "incomplete"
    mtime = os.path.getmtime(path / "manifest.json")
    for parent in parent_paths:
        manifest = parent / "manifest.json"
        if not manifest.exists() or os.path.getmtime(manifest) > mtime:
            return "stale"
    return "done"


def cmd_status(args: argparse.Namespace) -> int:
    config = _run_config(args.configfile, args.base)
    plan = build_plan(config)
    store = Path(config["store"])
    counts: dict[str, int] = {}
    for node in sorted(plan.nodes.values(), key=lambda n: (list(plan.versions).index(n.stage), n.key)):
        path = store / node.stage / node.id
        state = node_state(path, [store / p.stage / p.id for p in node.parents.values()])
        counts[state] = counts.get(state, 0) + 1
        if not args.summary:
            print(f"{state:10s} {node.stage}/{node.id}  {node.key}")
    label = " + ".join([args.base, *args.configfile])
    print(", ".join(f"{n} {state}" for state, n in sorted(counts.items())) + f" ({label})")
    return 0


def _add_config_options(parser: argparse.ArgumentParser, *, runs: bool) -> None:
    """``--configfile`` as Snakemake takes it (overlays over ``--base``, later wins)."""
    if runs:
        parser.add_argument("--configfile", "--config", nargs="+", action="append", metavar="FILE",
                            help="one run's overlays, layered over --base like `snakemake --configfile`; "
                                 "repeat for several runs (default: each shipped config/*.yaml)")  # fmt: skip
    else:
        parser.add_argument("--configfile", "--config", nargs="+", default=[], metavar="FILE",
                            help="the run's overlays, layered over --base in order like `snakemake --configfile`")  # fmt: skip
    parser.add_argument("--base", default=str(BASE_CONFIG),
                        help=f"the Snakefile's own configfile every overlay is layered over (default: {BASE_CONFIG})")  # fmt: skip


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="sae-difficulty", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--verbose", action="store_true", help="show the traceback of an error")
    sub = parser.add_subparsers(dest="command", required=True)
    store = sub.add_parser("store", help="list, verify or garbage-collect store nodes")
    store.add_argument("--store", help="store root (default: the `store` key of the configs, results/store)")
    store_sub = store.add_subparsers(dest="store_command", required=True)
    ls = store_sub.add_parser("ls", help="table of nodes: stage, id, size, created, which runs reach it")
    _add_config_options(ls, runs=True)
    ls.set_defaults(func=cmd_ls)
    verify = store_sub.add_parser("verify", help="re-hash every node (or the given ids) and check its declared outputs; non-zero exit on a problem")
    verify.add_argument("nodes", nargs="*", metavar="NODE_ID")
    verify.add_argument("--remove", action="store_true", help="delete the nodes that fail, so the next run rebuilds them")
    verify.add_argument("--base", default=str(BASE_CONFIG), help=argparse.SUPPRESS)
    verify.set_defaults(func=cmd_verify)
    gc = store_sub.add_parser("gc", help="delete nodes that no kept run reaches (dry run unless --yes)")
    gc.add_argument("--keep-config", nargs="+", action="append", required=True, metavar="FILE",
                    help="one kept run's overlays, layered over --base like `snakemake --configfile`; repeat for each run to keep")  # fmt: skip
    gc.add_argument("--base", default=str(BASE_CONFIG), help=f"the Snakefile's own configfile (default: {BASE_CONFIG})")
    gc.add_argument("--min-age", type=float, default=DEFAULT_MIN_AGE_H, metavar="HOURS",
                    help=f"never delete a node completed less than this long ago (default: {DEFAULT_MIN_AGE_H:g})")  # fmt: skip
    gc.add_argument("--force", action="store_true", help="also delete unreachable nodes younger than --min-age")
    gc.add_argument("--writer-timeout", type=float, default=DEFAULT_WRITER_BOUND_S / 3600, metavar="HOURS",
                    help="a node writer on another host counts as running until this long after it started")  # fmt: skip
    gc.add_argument("--yes", action="store_true", help="really delete (refused while a Snakemake lock or a node writer is live)")
    gc.set_defaults(func=cmd_gc)
    status = sub.add_parser("status", help="which nodes of a run are done / stale / incomplete / missing")
    _add_config_options(status, runs=False)
    status.add_argument("--summary", action="store_true", help="only the counts")
    status.set_defaults(func=cmd_status)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except (InputError, StoreError) as error:
        if args.verbose:
            traceback.print_exc()
        print(f"error: {' '.join(str(error).split())}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
