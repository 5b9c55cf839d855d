"""``config/README.md``, generated from ``config/schema.yaml``: every key path, its type
(with the schema's bounds), its default and its description, one table per section.

Regenerate after editing the schema (a test fails while the file is stale)::

    python -m sae_difficulty.pipeline.config_docs          # write config/README.md
    python -m sae_difficulty.pipeline.config_docs --check  # exit 1 if it is stale
"""

from __future__ import annotations

import argparse
import math
import sys
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from sae_difficulty.pipeline.config import REPO_ROOT, SCHEMA_PATH, load_schema

README_PATH = REPO_ROOT / "config" / "README.md"
REGENERATE = "python -m sae_difficulty.pipeline.config_docs"

_TYPE_NAMES = {"object": "mapping", "array": "list", "boolean": "boolean", "integer": "integer",
               "number": "number", "string": "string", "null": "null"}  # fmt: skip
_BOUNDS = (("minimum", "≥"), ("exclusiveMinimum", ">"), ("maximum", "≤"), ("exclusiveMaximum", "<"))
_DEFS_PREFIX = "#/$defs/"


@dataclass(frozen=True)
class KeyRow:
    """One documented key: its dotted path (``[]`` marks a list's items) and three cells."""

    path: str
    type: str
    default: str
    description: str


def _flow(value: Any) -> str:
    """A default in YAML flow style, as it would be written in a config file."""
    text = yaml.safe_dump(value, default_flow_style=True, sort_keys=False, width=math.inf)
    return text.removesuffix("\n").removesuffix("\n...").strip()


def _code(text: str) -> str:
    return f"`{text}`"


def _cell(text: str) -> str:
    return " ".join(str(text).split()).replace("|", "\\|")


def _ref_name(ref: str) -> str:
    if not ref.startswith(_DEFS_PREFIX):
        raise ValueError(f"schema $ref {ref!r}: only local {_DEFS_PREFIX}<name> references are documented")
    return ref[len(_DEFS_PREFIX):]


def _bounds(schema: Mapping[str, Any]) -> list[str]:
    found = [f"{sign} {schema[key]}" for key, sign in _BOUNDS if key in schema]
    if "enum" in schema:
        found.append("one of " + ", ".join(_code(_flow(v)) for v in schema["enum"]))
    if "pattern" in schema:
        found.append(f"matches {_code(schema['pattern'])}")
    if "minItems" in schema:
        found.append(f"at least {schema['minItems']} item{'s' if schema['minItems'] != 1 else ''}")
    return found


def describe_type(schema: Mapping[str, Any], item: bool = False) -> str:
    """The type cell: type names joined by "or", a list's item type, then the bounds
    (in parentheses; a list item's bounds follow its type without them)."""
    if "$ref" in schema:
        name = _ref_name(schema["$ref"])
        return f"[{name}](#{name})"
    types = schema.get("type", [])
    types = [types] if isinstance(types, str) else list(types)
    text = " or ".join(_TYPE_NAMES.get(t, t) for t in types) or "any"
    items = schema.get("items")
    if "array" in types and isinstance(items, Mapping):
        text = text.replace("list", f"list of {describe_type(items, item=True)}", 1)
    bounds = _bounds(schema)
    if not bounds:
        return text
    if item:  # "integer ≥ 0", "string, one of `a`, `b`"
        return f"{text}{' ' if bounds[0][0] in '≥>≤<' else ', '}{', '.join(bounds)}"
    return f"{text} ({', '.join(bounds)})"


def _default(schema: Mapping[str, Any], required: bool) -> str:
    if required:
        return "required"
    if "default" in schema:
        return _code(_flow(schema["default"]))
    return "–"


def key_rows(schema: Mapping[str, Any], defs: Mapping[str, Any], prefix: str = "") -> Iterator[KeyRow]:
    """Every key under ``schema``'s properties, depth first in schema order. A ``$ref`` key
    is one row linking its definition (documented once, in its own table)."""
    required = set(schema.get("required", []))
    for name, sub in schema.get("properties", {}).items():
        path = f"{prefix}{name}"
        description = sub.get("description", "")
        if "$ref" in sub and not description:
            description = defs[_ref_name(sub["$ref"])].get("description", "")
        yield KeyRow(path, describe_type(sub), _default(sub, name in required), description)
        if "properties" in sub:
            yield from key_rows(sub, defs, f"{path}.")
        items = sub.get("items")
        if isinstance(items, Mapping) and "properties" in items:
            yield from key_rows(items, defs, f"{path}[].")


def _table(rows: Sequence[KeyRow]) -> list[str]:
    lines = ["| Key | Type | Default | Description |", "|---|---|---|---|"]
    for row in rows:
        lines.append(f"| {_code(row.path)} | {_cell(row.type)} | {_cell(row.default)} | {_cell(row.description)} |")
    return lines


def render_readme(schema: Mapping[str, Any], schema_name: str = "config/schema.yaml") -> str:
    """The whole README: top-level scalars, one section per top-level mapping, then ``$defs``."""
    defs = schema.get("$defs", {})
    properties = schema.get("properties", {})
    sections = {name: sub for name, sub in properties.items() if "properties" in sub}
    lines = [
        f"# {schema.get('title', 'Configuration')}",
        "",
        f"<!-- Generated from {schema_name} by `{REGENERATE}`; edit the schema, not this file. -->",
        "",
        _cell(schema.get("description", "")),
        "",
        ("A run reads `config/config.yaml` (the offline demo); each `--configfile` overlay "
         "(`config/ci.yaml`, `config/paper.yaml`) is painted over it, key by key. "
         "`[]` in a key path stands for each item of a list."),
        "",
        "## Top-level keys",
        "",
    ]
    top = {"properties": {k: v for k, v in properties.items() if k not in sections},
           "required": schema.get("required", [])}  # fmt: skip
    lines += _table(list(key_rows(top, defs)))
    for name, sub in sections.items():
        lines += ["", f"## `{name}`", ""]
        if sub.get("description"):
            lines += [_cell(sub["description"]), ""]
        lines += _table(list(key_rows(sub, defs, f"{name}.")))
    if defs:
        lines += ["", "## Shared definitions", "",
                  "Keys that take one of these mappings link here; a key's own default overrides the values below."]  # fmt: skip
        for name, sub in defs.items():
            lines += ["", f"### {name}", ""]
            if sub.get("description"):
                lines += [_cell(sub["description"]), ""]
            lines += _table(list(key_rows(sub, defs)))
    return "\n".join(lines) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--schema", type=Path, default=SCHEMA_PATH)
    parser.add_argument("--output", type=Path, default=README_PATH)
    parser.add_argument("--check", action="store_true", help="exit 1 if the output is not current; write nothing")
    args = parser.parse_args(argv)
    text = render_readme(load_schema(args.schema))
    if args.check:
        current = args.output.read_text() if args.output.exists() else None
        if current != text:
            print(f"{args.output} is stale; regenerate it with: {REGENERATE}", file=sys.stderr)
            return 1
        return 0
    args.output.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
