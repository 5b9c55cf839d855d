"""`sae-difficulty`: inspect and maintain the content-addressed store.

    sae-difficulty store ls [--config FILE ...]
    sae-difficulty store verify [NODE_ID ...]
    sae-difficulty store gc --keep-config FILE [FILE ...] [--yes]
    sae-difficulty status [--config FILE]
"""

from __future__ import annotations

import argparse
import glob
import os
import shutil
import sys
from pathlib import Path

from sae_difficulty.pipeline.config import load_config
from sae_difficulty.pipeline.store import (
    is_complete,
    iter_store,
    leftovers,
    remove_node,
    verify_node,
)
from sae_difficulty.pipeline.study import build_plan
from sae_difficulty.utils.errors import InputError

DEFAULT_CONFIG = "config/config.yaml"


def _human_size(size: int) -> str:
    value = float(size)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{size} B"


def _reach(config_paths: list[str]) -> tuple[dict[str, list[str]], set[str]]:
    """node id -> names of the configs that reach it; and the store roots those configs use."""
    reached: dict[str, list[str]] = {}
    roots = set()
    for path in config_paths:
        config = load_config(path)
        roots.add(config["store"])
        for node_id in build_plan(config).nodes:
            reached.setdefault(node_id, []).append(Path(path).name)
    return reached, roots


def _default_configs() -> list[str]:
    return sorted(glob.glob("config/*.yaml"))


def cmd_ls(args: argparse.Namespace) -> int:
    configs = args.config or [p for p in _default_configs() if not p.endswith("schema.yaml")]
    reached, _ = _reach(configs)
    rows = [("stage", "node", "size", "created", "state", "configs")]
    for node in iter_store(args.store):
        state = "complete" if node.complete else "INCOMPLETE"
        rows.append((node.stage, node.node_id, _human_size(node.size), node.created, state,
                     ",".join(reached.get(node.node_id, [])) or "-"))  # fmt: skip
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip())
    return 0


def cmd_verify(args: argparse.Namespace) -> int:
    bad = 0
    checked = 0
    for node in iter_store(args.store):
        if args.nodes and node.node_id not in args.nodes:
            continue
        checked += 1
        problems = verify_node(node.path)
        for problem in problems:
            print(f"FAIL {node.stage}/{node.node_id}: {problem}")
        bad += bool(problems)
    print(f"{checked - bad} of {checked} nodes verify")
    return 1 if bad else 0


def cmd_gc(args: argparse.Namespace) -> int:
    reached, _ = _reach(args.keep_config)
    doomed = [node for node in iter_store(args.store) if node.node_id not in reached]
    stray = leftovers(args.store)
    verb = "deleting" if args.yes else "would delete"
    for node in doomed:
        print(f"{verb} {node.stage}/{node.node_id} ({_human_size(node.size)})")
    for path in stray:
        print(f"{verb} leftover {path}")
    if args.yes:
        for node in doomed:
            remove_node(node.path)
        for path in stray:
            shutil.rmtree(path, ignore_errors=True)
    kept = sum(1 for node in iter_store(args.store)) if args.yes else None
    print(f"{len(doomed)} nodes {'deleted' if args.yes else 'unreachable (dry run; pass --yes to delete)'}"
          + (f", {kept} kept" if kept is not None else ""))  # fmt: skip
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
    config = load_config(args.config)
    plan = build_plan(config)
    store = Path(config["store"])
    counts: dict[str, int] = {}
    for node in sorted(plan.nodes.values(), key=lambda n: (list(plan.versions).index(n.stage), n.key)):
        path = store / node.stage / node.id
        state = node_state(path, [store / p.stage / p.id for p in node.parents.values()])
        counts[state] = counts.get(state, 0) + 1
        if not args.summary:
            print(f"{state:10s} {node.stage}/{node.id}  {node.key}")
    print(", ".join(f"{n} {state}" for state, n in sorted(counts.items())) + f" ({args.config})")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="sae-difficulty", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    store = sub.add_parser("store", help="list, verify or garbage-collect store nodes")
    store.add_argument("--store", default="results/store", help="store root (default: results/store)")
    store_sub = store.add_subparsers(dest="store_command", required=True)
    ls = store_sub.add_parser("ls", help="table of nodes: stage, id, size, created, which configs reach it")
    ls.add_argument("--config", nargs="+", help="configs to check reachability against (default: config/*.yaml)")
    ls.set_defaults(func=cmd_ls)
    verify = store_sub.add_parser("verify", help="re-hash every node (or the given ids); non-zero exit on mismatch")
    verify.add_argument("nodes", nargs="*")
    verify.set_defaults(func=cmd_verify)
    gc = store_sub.add_parser("gc", help="delete nodes that no kept config reaches (dry run unless --yes)")
    gc.add_argument("--keep-config", nargs="+", required=True, metavar="FILE")
    gc.add_argument("--yes", action="store_true", help="really delete")
    gc.set_defaults(func=cmd_gc)
    status = sub.add_parser("status", help="which nodes of a config are done / stale / incomplete / missing")
    status.add_argument("--config", default=DEFAULT_CONFIG)
    status.add_argument("--summary", action="store_true", help="only the counts")
    status.set_defaults(func=cmd_status)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except InputError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
