"""config/README.md is generated from config/schema.yaml: it is current, it documents every key,
and the generator renders types, bounds, defaults and shared definitions faithfully."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from sae_difficulty.pipeline import config_docs
from sae_difficulty.pipeline.config import load_schema

# The JSON-schema keywords config/schema.yaml uses for a key. Anything else under a key is a
# typo or an unquoted comma in a flow mapping (`description: a, b` parses as two entries).
KEY_KEYWORDS = {"type", "default", "description", "minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum",
                "enum", "items", "minItems", "maxItems", "uniqueItems", "properties", "additionalProperties",
                "required", "pattern", "$ref"}  # fmt: skip

TINY_SCHEMA: dict[str, Any] = {
    "title": "tiny config",
    "description": "Planted keys.",
    "required": ["name"],
    "properties": {
        "name": {"type": "string", "description": "Run name."},
        "threads": {"type": "integer", "minimum": 1, "default": 2, "description": "Threads | per job."},
        "probe": {
            "type": "object", "default": {}, "description": "The probe section.",
            "properties": {
                "mode": {"type": "string", "enum": ["cv", "holdout"], "default": "cv", "description": "How."},
                "gap": {"type": ["integer", "null"], "minimum": 0, "default": None, "description": "Purge gap."},
                "layers": {"type": "array", "items": {"type": "integer", "minimum": 0}, "minItems": 1, "default": [1]},
                "inner": {"type": "object", "default": {}, "properties": {
                    "folds": {"type": "integer", "exclusiveMinimum": 1, "default": 3, "description": "Inner folds."}}},
                "big": {"$ref": "#/$defs/net", "default": {"width": 128}},
                "external": {"type": "array", "default": [], "items": {
                    "type": "object", "required": ["path"],
                    "properties": {"path": {"type": "string", "description": "Where it is."}}}},
            },
        },
    },
    "$defs": {"net": {"type": "object", "description": "A network.", "properties": {
        "width": {"type": "integer", "minimum": 8, "default": 64, "description": "Width."}}}},
}  # fmt: skip


def _key_paths(schema: dict[str, Any], prefix: str = "") -> list[str]:
    """Every key path below ``schema`` (``[]`` for list items), independently of the generator."""
    paths = []
    for name, sub in schema.get("properties", {}).items():
        paths.append(prefix + name)
        paths += _key_paths(sub, f"{prefix}{name}.")
        if isinstance(sub.get("items"), dict):
            paths += _key_paths(sub["items"], f"{prefix}{name}[].")
    return paths


def _row(readme: str, path: str) -> list[str]:
    line = next(line for line in readme.splitlines() if line.startswith(f"| `{path}` |"))
    return [cell.strip() for cell in line.strip("|").split(" | ")]


def test_config_readme_is_current() -> None:
    expected = config_docs.render_readme(load_schema())
    current = config_docs.README_PATH.read_text() if config_docs.README_PATH.exists() else ""
    assert current == expected, f"config/README.md is stale; regenerate it with: {config_docs.REGENERATE}"


def test_config_readme_documents_every_key_of_the_schema() -> None:
    schema = load_schema()
    readme = config_docs.render_readme(schema)
    for path in _key_paths(schema):
        # a top-level mapping is a section heading; every other key is a table row
        assert f"| `{path}` |" in readme or f"\n## `{path}`\n" in readme, path
    for name, definition in schema["$defs"].items():
        assert f"### {name}" in readme
        for path in _key_paths(definition):
            assert f"| `{path}` |" in readme.split(f"### {name}", 1)[1], f"$defs.{name}.{path}"


def test_every_schema_key_uses_only_json_schema_keywords() -> None:
    schema = load_schema()

    def check(node: dict[str, Any], where: str) -> None:
        for name, sub in node.get("properties", {}).items():
            unknown = set(sub) - KEY_KEYWORDS
            assert not unknown, f"{where}{name}: unknown schema keywords {sorted(unknown)} (quote a description with commas)"
            check(sub, f"{where}{name}.")
            if isinstance(sub.get("items"), dict):
                check(sub["items"], f"{where}{name}[].")

    check(schema, "")
    for name, definition in schema["$defs"].items():
        check(definition, f"$defs.{name}.")


def test_rows_render_types_bounds_defaults_and_descriptions() -> None:
    readme = config_docs.render_readme(TINY_SCHEMA)
    assert readme.startswith("# tiny config\n")
    assert _row(readme, "name") == ["`name`", "string", "required", "Run name."]
    assert _row(readme, "threads") == ["`threads`", "integer (≥ 1)", "`2`", "Threads \\| per job."]
    assert _row(readme, "probe.mode")[1:3] == ["string (one of `cv`, `holdout`)", "`cv`"]
    assert _row(readme, "probe.gap")[1:3] == ["integer or null (≥ 0)", "`null`"]
    assert _row(readme, "probe.layers")[1:3] == ["list of integer ≥ 0 (at least 1 item)", "`[1]`"]
    assert _row(readme, "probe.inner.folds")[1:3] == ["integer (> 1)", "`3`"]
    # a $ref key links its definition, shows its own default and falls back to the definition's description
    assert _row(readme, "probe.big")[1:] == ["[net](#net)", "`{width: 128}`", "A network."]
    assert _row(readme, "probe.external[].path")[1:3] == ["string", "required"]
    assert "## `probe`\n\nThe probe section." in readme
    definitions = readme.split("## Shared definitions", 1)[1]
    assert "### net" in definitions and _row(definitions, "width")[1:3] == ["integer (≥ 8)", "`64`"]
    # top-level scalars come before the first section; the probe keys only inside it
    top = readme.split("## `probe`", 1)[0]
    assert "| `threads` |" in top and "| `probe.mode` |" not in top


def test_only_local_definitions_are_documented() -> None:
    schema = {"properties": {"x": {"$ref": "other.yaml#/net"}}}
    with pytest.raises(ValueError, match="only local"):
        config_docs.render_readme(schema)


def test_check_mode_reports_a_stale_file_and_write_mode_fixes_it(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    schema_path = tmp_path / "schema.yaml"
    schema_path.write_text("title: t\nproperties:\n  seed: {type: integer, default: 0, description: Seed.}\n")
    readme = tmp_path / "README.md"
    readme.write_text("# outdated\n")
    assert config_docs.main(["--schema", str(schema_path), "--output", str(readme), "--check"]) == 1
    assert config_docs.REGENERATE in capsys.readouterr().err
    assert readme.read_text() == "# outdated\n"
    assert config_docs.main(["--schema", str(schema_path), "--output", str(readme)]) == 0
    assert "| `seed` | integer | `0` | Seed. |" in readme.read_text()
    assert config_docs.main(["--schema", str(schema_path), "--output", str(readme), "--check"]) == 0
