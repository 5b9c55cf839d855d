"""One check for every evaluation's written result: its GENERATED JSON schema (and its pydantic model)
accept the real document and reject malformed ones."""

from __future__ import annotations

from typing import Any

import jsonschema
import pytest

from sae_difficulty.evals.base import EvalOutput
from sae_difficulty.utils.errors import InputError


def _malformed(document: dict[str, Any]) -> list[dict[str, Any]]:
    """An unknown key, a missing key, and a number (or string) replaced by a value of the wrong type."""
    first = sorted(document)[0]
    broken = [dict(document, unexpected_key=1), {key: value for key, value in document.items() if key != first}]
    for key, value in sorted(document.items()):
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            broken.append(dict(document, **{key: "not a number"}))
            break
        if isinstance(value, str):
            broken.append(dict(document, **{key: 12345}))
            break
    return broken


def assert_schema_accepts(model: type[EvalOutput], document: dict[str, Any]) -> None:
    """``document`` validates against ``model.model_json_schema()`` and ``model``; malformed copies do not."""
    schema = model.model_json_schema()
    jsonschema.Draft202012Validator.check_schema(schema)
    jsonschema.validate(document, schema)
    model.check(document)
    for broken in _malformed(document):
        with pytest.raises(jsonschema.ValidationError):
            jsonschema.validate(broken, schema)
        with pytest.raises(InputError, match=model.__name__):
            model.check(broken)
