"""Pieces every evaluation module shares: schema fragments and config-key checking."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from sae_difficulty.utils.errors import InputError

NUMBER_OR_NULL: dict[str, Any] = {"type": ["number", "null"]}

#: JSON schema of a module's ``headline(result)`` (what the run ledger reads).
HEADLINE_SCHEMA: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "required": ["metric", "value", "ci_low", "ci_high", "null", "claim"],
    "properties": {
        "metric": {"type": "string"},
        "value": NUMBER_OR_NULL,
        "ci_low": NUMBER_OR_NULL,
        "ci_high": NUMBER_OR_NULL,
        "null": NUMBER_OR_NULL,
        "claim": {"type": "string"},
    },
}


def reject_unknown_keys(values: Mapping[str, Any], known: Iterable[str], what: str) -> None:
    """One-line InputError naming the keys of ``values`` that ``what`` does not know."""
    known = sorted(known)
    unknown = sorted(set(values) - set(known))
    if unknown:
        raise InputError(f"{what}: unknown key(s) {unknown}; expected some of {known}")
