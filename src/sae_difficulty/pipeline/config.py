"""Config loading and validation against ``config/schema.yaml``.

Validation fills in every default declared in the schema (so the node ids computed
by the CLI equal the ones computed when Snakemake parses the workflow) and turns
the first schema violation into one line naming the key and what was expected.
"""

from __future__ import annotations

import copy
import os
from functools import lru_cache
from pathlib import Path
from typing import Any

import jsonschema
import yaml

from sae_difficulty.utils.errors import InputError

REPO_ROOT = Path(__file__).resolve().parents[3]
SCHEMA_PATH = REPO_ROOT / "config" / "schema.yaml"


@lru_cache(maxsize=4)
def load_schema(path: str | os.PathLike = SCHEMA_PATH) -> dict[str, Any]:
    with open(path) as handle:
        return yaml.safe_load(handle)


def _with_defaults(validator_class):
    validate_properties = validator_class.VALIDATORS["properties"]

    def set_defaults(validator, properties, instance, schema):
        if isinstance(instance, dict):
            for name, subschema in properties.items():
                if "default" in subschema and name not in instance:
                    instance[name] = copy.deepcopy(subschema["default"])
        yield from validate_properties(validator, properties, instance, schema)

    return jsonschema.validators.extend(validator_class, {"properties": set_defaults})


DefaultFillingValidator = _with_defaults(jsonschema.Draft202012Validator)

_TYPE_NAMES = {"integer": "an integer", "number": "a number", "string": "a string", "boolean": "true/false",
               "array": "a list", "object": "a mapping", "null": "null"}  # fmt: skip


def _key_path(error: jsonschema.ValidationError) -> str:
    parts = [str(p) if not isinstance(p, int) else f"[{p}]" for p in error.absolute_path]
    return ".".join(parts).replace(".[", "[") or "<top level>"


def _describe(error: jsonschema.ValidationError) -> str:
    key = _key_path(error)
    value = error.instance
    if error.validator == "additionalProperties":
        allowed = sorted(error.schema.get("properties", {}))
        extra = sorted(set(value) - set(allowed)) if isinstance(value, dict) else []
        where = f"under '{key}'" if key != "<top level>" else "at the top level"
        return f"unknown config key {extra[0]!r} {where}; expected one of: {', '.join(allowed)}"
    if error.validator == "required":
        missing = error.message.split("'")[1] if "'" in error.message else error.message
        full = f"{key}.{missing}" if key != "<top level>" else missing
        return f"missing required config key '{full}'"
    if error.validator == "type":
        expected = error.validator_value
        expected = [expected] if isinstance(expected, str) else expected
        names = " or ".join(_TYPE_NAMES.get(t, t) for t in expected)
        return f"config key '{key}': expected {names}, got {value!r} ({type(value).__name__})"
    if error.validator == "enum":
        return f"config key '{key}': expected one of {error.validator_value}, got {value!r}"
    if error.validator in {"minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum"}:
        return f"config key '{key}': {value!r} violates {error.validator} {error.validator_value}"
    return f"config key '{key}': {error.message}"


def validate_config(config: dict[str, Any], schema: dict[str, Any] | None = None) -> dict[str, Any]:
    """Validate in place (filling defaults) and return the config; raise InputError on the first problem."""
    schema = schema or load_schema()
    validator = DefaultFillingValidator(schema)
    errors = sorted(validator.iter_errors(config), key=lambda e: (len(e.absolute_path), list(map(str, e.absolute_path))))
    if errors:
        raise InputError(_describe(jsonschema.exceptions.best_match(errors)))
    return config


def load_config(path: str | os.PathLike) -> dict[str, Any]:
    """Read a YAML config file, validate it and fill its defaults."""
    path = Path(path)
    try:
        with open(path) as handle:
            config = yaml.safe_load(handle) or {}
    except FileNotFoundError:
        raise InputError(f"config file {path} does not exist") from None
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f" (line {mark.line + 1})" if mark else ""
        raise InputError(f"config file {path} is not valid YAML{where}") from None
    if not isinstance(config, dict):
        raise InputError(f"config file {path}: expected a mapping at the top level")
    try:
        return validate_config(config)
    except InputError as error:
        raise InputError(f"{path}: {error}") from None
