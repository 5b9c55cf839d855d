"""Config loading, validation against ``config/schema.yaml`` and "the config of a run".

Validation fills in every default declared in the schema (so the node ids computed
by the CLI equal the ones computed when Snakemake parses the workflow) and turns
the first schema violation into one line naming the key and what was expected; then
it checks what the schema cannot express (duplicates in lists, a layer beyond a demo
model's depth, ...), so a bad value fails before any job starts.

A run's config is the Snakefile's ``configfile:`` (``config/config.yaml``) with each
``--configfile`` overlay painted over it in order, exactly as Snakemake layers them.
:func:`resolve_config` builds it for the CLI; the Snakefile passes the config
Snakemake merged to :func:`finalize_run_config`; both end in the same checks.
"""

from __future__ import annotations

import copy
import hashlib
import os
from collections.abc import Iterable, Sequence
from functools import lru_cache
from pathlib import Path
from typing import Any

import jsonschema
import yaml

from sae_difficulty.pipeline.consistency import check_consistency
from sae_difficulty.utils.errors import InputError

REPO_ROOT = Path(__file__).resolve().parents[3]
SCHEMA_PATH = REPO_ROOT / "config" / "schema.yaml"
# The Snakefile's `configfile:`; every `--configfile` is layered over it.
BASE_CONFIG = Path("config") / "config.yaml"
# Top-level keys of a JSON schema that no workflow config has.
_SCHEMA_MARKERS = ("$schema", "$defs", "properties")


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
    check_consistency(config)
    return config


def read_config_file(path: str | os.PathLike) -> dict[str, Any]:
    """One YAML config file as a mapping (not validated), with one-line errors naming the file."""
    path = Path(path)
    if path.is_dir():
        raise InputError(f"config file {path} is a directory; expected a YAML file such as config/ci.yaml")
    try:
        with open(path) as handle:
            config = yaml.safe_load(handle) or {}
    except FileNotFoundError:
        raise InputError(f"config file {path} does not exist") from None
    except (UnicodeDecodeError, PermissionError) as error:
        raise InputError(f"config file {path} is not readable YAML ({type(error).__name__})") from None
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f" (line {mark.line + 1})" if mark else ""
        raise InputError(f"config file {path} is not valid YAML{where}") from None
    if not isinstance(config, dict):
        raise InputError(f"config file {path}: expected a mapping at the top level")
    markers = [key for key in _SCHEMA_MARKERS if key in config]
    if markers:
        raise InputError(
            f"{path} is a JSON schema (top-level {markers[0]!r}), not a workflow config; "
            f"pass {BASE_CONFIG} or an overlay such as config/ci.yaml"
        )
    return config


def load_config(path: str | os.PathLike) -> dict[str, Any]:
    """Read ONE YAML config file on its own, validate it and fill its defaults.

    A run's config is the base with overlays (:func:`resolve_config`); use this only
    for a file that is complete by itself.
    """
    path = Path(path)
    config = read_config_file(path)
    try:
        return validate_config(config)
    except InputError as error:
        raise InputError(f"{path}: {error}") from None


def layer_config(base: dict[str, Any], overlay: dict[str, Any]) -> dict[str, Any]:
    """Paint ``overlay`` over ``base`` in place, as Snakemake's ``update_config`` does.

    Mappings merge key by key, recursively; any other value (a list included)
    replaces the base's; the later file wins.
    """
    for key, value in overlay.items():
        if isinstance(value, dict):
            current = base.get(key)
            base[key] = layer_config(current if isinstance(current, dict) else {}, value)
        else:
            base[key] = copy.deepcopy(value)
    return base


def resolve_config(
    overlays: Sequence[str | os.PathLike] = (),
    base: str | os.PathLike | None = BASE_CONFIG,
    *,
    check_files: bool = False,
) -> dict[str, Any]:
    """The config of ``snakemake --configfile <overlays...>``: the base, each overlay painted
    over it in order, validated with defaults filled.

    ``base`` is the Snakefile's ``configfile:`` (relative to the working directory, like
    Snakemake's); None resolves the overlays alone. ``check_files`` also runs
    :func:`check_run_inputs` (what a run needs from the file system).
    """
    files = ([_base_path(base)] if base is not None else []) + [Path(p) for p in overlays]
    if not files:
        raise InputError("no config given; expected --configfile FILE (layered over config/config.yaml)")
    config: dict[str, Any] = {}
    for path in files:
        layer_config(config, read_config_file(path))
    try:
        return finalize_run_config(config, check_files=check_files)
    except InputError as error:
        raise InputError(f"{' + '.join(map(str, files))}: {error}") from None


def _base_path(base: str | os.PathLike) -> Path:
    """The base config relative to the working directory, else the project's own."""
    path = Path(base)
    if not path.is_absolute() and not path.exists() and (REPO_ROOT / path).exists():
        return REPO_ROOT / path
    return path


def finalize_run_config(config: dict[str, Any], *, check_files: bool = True) -> dict[str, Any]:
    """Validate a merged run config in place (defaults filled) and, with ``check_files``,
    check what the run will read and write (the Snakefile calls this on Snakemake's config)."""
    validate_config(config)
    if check_files:
        check_run_inputs(config)
    return config


def check_run_inputs(config: dict[str, Any]) -> None:
    """File-system facts a run needs, checked before any job: a writable store directory,
    and each enabled TSFM dataset's CSV matching its configured ``sha256``."""
    check_store_path(config["store"])
    if config["tsfm"]["enabled"]:
        for name, dataset in config["tsfm"]["datasets"].items():
            if dataset.get("enabled", True) and dataset.get("sha256"):
                _check_csv_checksum(f"tsfm.datasets.{name}", dataset["path"], dataset["sha256"])


def check_store_path(store: str | os.PathLike) -> Path:
    """Refuse a store that is, or lies under, something other than a writable directory."""
    path = Path(store)
    if path.exists() and not path.is_dir():
        raise InputError(f"store {store}: exists and is not a directory; expected a directory (config key 'store')")
    existing = path
    while not existing.exists():
        existing = existing.parent
    if not existing.is_dir():
        raise InputError(f"store {store}: {existing} is a regular file, so the store cannot be created under it (config key 'store')")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise InputError(f"store {store}: {existing} is not writable by this user (config key 'store')")
    return path


@lru_cache(maxsize=16)
def _file_sha256(path: str, size: int, mtime_ns: int) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def _check_csv_checksum(key: str, path: str, expected: str) -> None:
    file = Path(path)
    if not file.is_file():
        return  # the tasks job says so; a rule may still be about to download it
    stat = file.stat()
    actual = _file_sha256(str(file.resolve()), stat.st_size, stat.st_mtime_ns)
    if actual != expected:
        raise InputError(
            f"{key}.path: {path} has sha256 {actual[:12]}..., not the configured {key}.sha256 {expected[:12]}...; "
            f"set {key}.sha256 to null (or to the file's checksum) to use your own file"
        )


def config_files_label(files: Iterable[str | os.PathLike]) -> str:
    """How the CLI names one run's overlay list: ``ci.yaml`` or ``ci.yaml+extra.yaml``."""
    return "+".join(Path(f).name for f in files) or BASE_CONFIG.name
