"""What every SAE evaluation shares: the config validator, the output base, the headline model, the registry.

* Configs are frozen dataclasses deriving from :class:`EvalConfig`; each field is
  declared with :func:`integer`, :func:`number`, :func:`integers`, :func:`numbers` or
  :func:`flag`, and ONE validator (:meth:`EvalConfig.__post_init__`) checks them all,
  raising one-line errors ``sae_evals.<name>.<key>: expected ..., got ...``.
* An evaluation's result is written as a JSON document described by a pydantic model
  deriving from :class:`EvalOutput`; its JSON schema is generated
  (``model_json_schema()``), never written by hand. :class:`EvalResult` is the in-memory
  result (arrays, frames) whose ``to_dict()`` validates its document through that model.
* :class:`Headline` is the ledger line every evaluation writes (``headline.json``).
* :data:`REGISTRY` names every evaluation; adding one is its folder, its keys under
  ``sae_evals`` in ``config/schema.yaml`` and one line here (see ``evals/README.md``).
"""

from __future__ import annotations

import dataclasses
import importlib
import math
from collections.abc import Callable, Mapping
from dataclasses import MISSING, dataclass
from pathlib import Path
from typing import Annotated, Any, ClassVar

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field, ValidationError, create_model

from sae_difficulty.utils.errors import InputError
from sae_difficulty.utils.io import to_jsonable

#: Every evaluation: its ``sae_evals`` key -> the package that defines its ``EVALUATION``.
REGISTRY: dict[str, str] = {
    "encode_fidelity": "sae_difficulty.evals.encode_fidelity",
    "cross_domain": "sae_difficulty.evals.cross_domain",
    "sparse_probing": "sae_difficulty.evals.sparse_probing",
    "transcoder": "sae_difficulty.evals.transcoder",
    "steering": "sae_difficulty.evals.steering",
    "circuit": "sae_difficulty.evals.circuit",
    "meta_structure": "sae_difficulty.evals.meta_structure",
    "ground_truth": "sae_difficulty.evals.ground_truth",
}

_RULE = "sae_evals_rule"


# --------------------------------------------------------------------------- config fields


def _is_int(value: Any) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_))


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, (bool, np.bool_))


@dataclass(frozen=True)
class Rule:
    """What one config field accepts: its kind and bounds (``exclusive_*``: the bound itself is refused)."""

    kind: str  # integer | number | integers | numbers | flag
    minimum: float | None = None
    maximum: float | None = None
    exclusive_minimum: bool = False
    exclusive_maximum: bool = False
    sort: bool = False

    def _bounds(self) -> str:
        low = None if self.minimum is None else f"{'>' if self.exclusive_minimum else '>='} {self.minimum:g}"
        high = None if self.maximum is None else f"{'<' if self.exclusive_maximum else '<='} {self.maximum:g}"
        if low and high:
            left, right = "(" if self.exclusive_minimum else "[", ")" if self.exclusive_maximum else "]"
            return f" in {left}{self.minimum:g}, {self.maximum:g}{right}"
        return f" {low or high}" if low or high else ""

    def expected(self) -> str:
        """The one-line description of what is accepted, e.g. ``an integer >= 1``."""
        scalar = {"integer": "an integer", "integers": "integers", "number": "a finite number", "numbers": "finite numbers"}
        if self.kind == "flag":
            return "true or false"
        if self.kind in ("integers", "numbers"):
            return f"a non-empty list of distinct {scalar[self.kind]}{self._bounds()}"
        return f"{scalar[self.kind]}{self._bounds()}"

    def _scalar(self, value: Any, integral: bool) -> int | float:
        if integral and isinstance(value, float) and value.is_integer():
            value = int(value)  # YAML's 1.0e+3
        if not (_is_int(value) if integral else _is_number(value)) or not math.isfinite(value):
            raise ValueError
        below = self.minimum is not None and (value <= self.minimum if self.exclusive_minimum else value < self.minimum)
        above = self.maximum is not None and (value >= self.maximum if self.exclusive_maximum else value > self.maximum)
        if below or above:
            raise ValueError
        return int(value) if integral else value

    def normalise(self, value: Any) -> Any:
        """The accepted value (lists become tuples, integral floats integers); ValueError when refused."""
        if self.kind == "flag":
            if not isinstance(value, (bool, np.bool_)):
                raise ValueError
            return bool(value)
        if self.kind in ("integer", "number"):
            return self._scalar(value, self.kind == "integer")
        if isinstance(value, (str, bytes)) or not hasattr(value, "__iter__"):
            raise ValueError
        items = tuple(self._scalar(item, self.kind == "integers") for item in value)
        if self.kind == "numbers":
            items = tuple(float(item) for item in items)
        if not items or len(set(items)) != len(items):
            raise ValueError
        return tuple(sorted(items)) if self.sort else items

    def annotation(self) -> Any:
        """The pydantic type of this field in a written result (bounds included in the generated schema)."""
        if self.kind == "flag":
            return bool
        bounds = {
            ("gt" if self.exclusive_minimum else "ge"): self.minimum,
            ("lt" if self.exclusive_maximum else "le"): self.maximum,
        }
        field = Field(**{key: value for key, value in bounds.items() if value is not None})
        scalar = int if self.kind in ("integer", "integers") else float
        if self.kind in ("integers", "numbers"):
            return Annotated[list[Annotated[scalar, field]], Field(min_length=1)]
        return Annotated[scalar, field]


def _field(rule: Rule, default: Any, doc: str) -> Any:
    return dataclasses.field(default=default, metadata={_RULE: rule, "doc": doc})


def integer(default: Any = MISSING, *, minimum: int = 0, doc: str = "") -> Any:
    """A config field holding an integer >= ``minimum``."""
    return _field(Rule("integer", minimum=minimum), default, doc)


def number(default: Any = MISSING, *, minimum: float | None = None, maximum: float | None = None,
           exclusive_minimum: bool = False, exclusive_maximum: bool = False, doc: str = "") -> Any:  # fmt: skip
    """A config field holding a finite number within the given bounds."""
    return _field(Rule("number", minimum, maximum, exclusive_minimum, exclusive_maximum), default, doc)


def integers(default: Any = MISSING, *, minimum: int = 0, sort: bool = False, doc: str = "") -> Any:
    """A config field holding a non-empty tuple of distinct integers >= ``minimum`` (sorted if ``sort``)."""
    return _field(Rule("integers", minimum=minimum, sort=sort), default, doc)


def numbers(default: Any = MISSING, *, minimum: float | None = None, doc: str = "") -> Any:
    """A config field holding a non-empty tuple of distinct finite floats >= ``minimum``."""
    return _field(Rule("numbers", minimum=minimum), default, doc)


def flag(default: Any = MISSING, *, doc: str = "") -> Any:
    """A config field holding true or false."""
    return _field(Rule("flag"), default, doc)


@dataclass(frozen=True)
class EvalConfig:
    """Base of every evaluation's frozen config: one validator, one error style.

    Subclasses set ``NAME`` (their key under ``sae_evals``), declare fields with the
    helpers above and may add cross-field checks in :meth:`check`.
    """

    NAME: ClassVar[str] = "evaluation"

    def __post_init__(self) -> None:
        for spec in dataclasses.fields(self):
            rule = spec.metadata.get(_RULE)
            if rule is None:
                continue
            value = getattr(self, spec.name)
            try:
                object.__setattr__(self, spec.name, rule.normalise(value))
            except (ValueError, TypeError):
                raise self.invalid(spec.name, rule.expected(), value) from None
        self.check()

    def check(self) -> None:
        """Cross-field checks of a subclass (raise :meth:`invalid`)."""

    @classmethod
    def invalid(cls, key: str, expected: str, value: Any) -> InputError:
        """The one-line error of a bad value: ``sae_evals.<name>.<key>: expected ..., got ...``."""
        shown = list(value) if isinstance(value, tuple) else value
        return InputError(f"sae_evals.{cls.NAME}.{key}: expected {expected}, got {shown!r}")

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> Any:
        """Build from a config mapping; unknown or missing keys give a one-line InputError."""
        if not isinstance(values, Mapping):
            raise InputError(f"sae_evals.{cls.NAME}: expected a mapping, got {type(values).__name__}")
        specs = {spec.name: spec for spec in dataclasses.fields(cls)}
        unknown = sorted(set(values) - set(specs))
        if unknown:
            raise InputError(f"sae_evals.{cls.NAME}: unknown key(s) {unknown}; expected some of {sorted(specs)}")
        for name, spec in specs.items():
            if name not in values and spec.default is MISSING and spec.default_factory is MISSING:
                raise InputError(f"sae_evals.{cls.NAME}.{name}: missing; expected {spec.metadata[_RULE].expected()}")
        return cls(**dict(values))

    def to_dict(self) -> dict[str, Any]:
        """Every field, tuples as lists (what a result records as its ``config``)."""
        return {spec.name: _plain(getattr(self, spec.name)) for spec in dataclasses.fields(self)}

    @classmethod
    def document_model(cls) -> type[EvalOutput]:
        """The pydantic model of :meth:`to_dict` (field bounds become schema bounds)."""
        fields = {spec.name: (spec.metadata[_RULE].annotation(), ...) for spec in dataclasses.fields(cls)}
        return create_model(f"{cls.__name__}Document", __base__=EvalOutput, **fields)


def _plain(value: Any) -> Any:
    return list(value) if isinstance(value, tuple) else value


# --------------------------------------------------------------------------- outputs

NumberOrNull = float | None
Fraction = Annotated[float, Field(ge=0, le=1)]
Count = Annotated[int, Field(ge=0)]
PositiveCount = Annotated[int, Field(ge=1)]


class EvalOutput(BaseModel):
    """Base of the pydantic model of a written result: strict types, no unknown keys, schema generated."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)

    @classmethod
    def check(cls, document: Any) -> EvalOutput:
        """Validate a JSON-able document; one-line InputError naming the first bad field."""
        try:
            return cls.model_validate(document)
        except ValidationError as error:
            first = error.errors()[0]
            where = ".".join(str(part) for part in first["loc"]) or "(document)"
            raise InputError(f"{cls.__name__}.{where}: {first['msg']} (got {str(first.get('input'))[:80]})") from None

    def to_dict(self) -> dict[str, Any]:
        """JSON-able dict of a model built directly (NaN/inf become null, numpy scalars plain)."""
        return to_jsonable(self.model_dump())


class Headline(EvalOutput):
    """The ledger line of one evaluation (``headline.json`` adds the ``claim_sign`` the stage states)."""

    metric: str
    value: NumberOrNull
    ci_low: NumberOrNull
    ci_high: NumberOrNull
    null: NumberOrNull
    claim: str


class EvalResult:
    """Mixin of an evaluation's in-memory result: ``document()`` is its JSON content,
    ``to_dict()`` that content validated through ``OUTPUT``, ``table()`` its parquet table."""

    OUTPUT: ClassVar[type[EvalOutput]]

    def document(self) -> dict[str, Any]:
        raise NotImplementedError

    def to_dict(self) -> dict[str, Any]:
        """JSON-able, deterministic (keys sorted on write, NaN/inf -> null), valid against ``OUTPUT``."""
        document = to_jsonable(self.document())
        self.OUTPUT.check(document)
        return document

    def table(self) -> pd.DataFrame:
        raise NotImplementedError


# --------------------------------------------------------------------------- registry


@dataclass(frozen=True)
class Evaluation:
    """One registered evaluation: what writes and describes its result.

    ``claim_sign``: the side of the headline's null the cited claim predicts (0: none).
    """

    name: str
    config: type[EvalConfig]
    output: type[EvalOutput]
    headline: Callable[[Any], dict[str, Any]]
    plot: Callable[[Any, Path], Path] | None
    claim_sign: int


def get_evaluation(name: str) -> Evaluation:
    """The registered evaluation ``name`` (its package is imported on first use)."""
    if name not in REGISTRY:
        raise InputError(f"evaluation {name!r} is not registered; expected one of {sorted(REGISTRY)}")
    evaluation = importlib.import_module(REGISTRY[name]).EVALUATION
    if evaluation.name != name:
        raise InputError(f"{REGISTRY[name]}.EVALUATION is named {evaluation.name!r}, registered as {name!r}")
    return evaluation


def checked_headline(evaluation: Evaluation, result: Any) -> dict[str, Any]:
    """``evaluation.headline(result)`` as plain JSON, validated against :class:`Headline`."""
    headline = to_jsonable(evaluation.headline(result))
    Headline.check(headline)
    return headline
