"""The shared pieces of the evaluations: one config validator, generated output schemas, the registry,
and writing a node's files only through the registered models."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jsonschema
import pandas as pd
import pytest
import yaml

from sae_difficulty.evals.base import (
    REGISTRY,
    EvalConfig,
    EvalResult,
    Headline,
    flag,
    get_evaluation,
    integer,
    integers,
    number,
    numbers,
)
from sae_difficulty.evals.meta_structure import MetaStructureOutput
from sae_difficulty.stages.evals_common import write_evaluation
from sae_difficulty.utils.errors import InputError

SCHEMA = yaml.safe_load((Path(__file__).parents[2] / "config" / "schema.yaml").read_text())
SAE_EVALS = SCHEMA["properties"]["sae_evals"]["properties"]


@dataclass(frozen=True)
class ToyConfig(EvalConfig):
    NAME = "toy"

    size: int = integer(minimum=1)
    rate: float = number(0.5, minimum=0, maximum=1, exclusive_minimum=True)
    ks: tuple[int, ...] = integers((3, 1), minimum=1, sort=True)
    grid: tuple[float, ...] = numbers((0, 1), minimum=0)
    on: bool = flag(True)


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"size": 0}, "sae_evals.toy.size: expected an integer >= 1, got 0"),
        ({"size": True}, "sae_evals.toy.size: expected an integer >= 1, got True"),
        ({"size": 2, "rate": 0}, r"sae_evals.toy.rate: expected a finite number in \(0, 1\], got 0"),
        ({"size": 2, "rate": float("nan")}, "sae_evals.toy.rate: expected a finite number in"),
        ({"size": 2, "ks": [1, 1]}, r"sae_evals.toy.ks: expected a non-empty list of distinct integers >= 1, got \[1, 1\]"),
        ({"size": 2, "ks": []}, "sae_evals.toy.ks: expected a non-empty list"),
        ({"size": 2, "grid": "01"}, "sae_evals.toy.grid: expected a non-empty list of distinct finite numbers >= 0"),
        ({"size": 2, "on": 1}, "sae_evals.toy.on: expected true or false, got 1"),
        ({"size": 2, "sise": 3}, r"sae_evals.toy: unknown key\(s\) \['sise'\]; expected some of"),
        ({}, "sae_evals.toy.size: missing; expected an integer >= 1"),
    ],
)
def test_one_validator_one_message_style(values: dict[str, Any], message: str):
    with pytest.raises(InputError, match=message) as raised:
        ToyConfig.from_dict(values)
    assert "\n" not in str(raised.value)


def test_accepted_values_are_normalised():
    config = ToyConfig.from_dict({"size": 4.0, "ks": [5, 2], "grid": [0, 2]})
    assert config.size == 4 and isinstance(config.size, int)
    assert config.ks == (2, 5) and config.grid == (0.0, 2.0)
    assert config.to_dict() == {"size": 4, "rate": 0.5, "ks": [2, 5], "grid": [0.0, 2.0], "on": True}
    schema = ToyConfig.document_model().model_json_schema()
    assert schema["properties"]["rate"]["exclusiveMinimum"] == 0 and schema["properties"]["ks"]["minItems"] == 1
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.size = 3  # type: ignore[misc]


@pytest.mark.parametrize("name", sorted(REGISTRY))
def test_every_registered_evaluation_is_complete(name: str):
    evaluation = get_evaluation(name)
    assert evaluation.name == name and evaluation.config.NAME == name and evaluation.claim_sign in (-1, 0, 1)
    schema = evaluation.output.model_json_schema()
    jsonschema.Draft202012Validator.check_schema(schema)
    assert schema["additionalProperties"] is False and schema["required"]
    # its keys under sae_evals in config/schema.yaml exist, and their defaults make a valid config
    section = SAE_EVALS[name]["properties"]
    fields = {spec.name: spec for spec in dataclasses.fields(evaluation.config)}
    defaults = {key: spec["default"] for key, spec in section.items() if key in fields}
    required = {key: (0,) if key == "layers" else 0 for key, spec in fields.items() if spec.default is dataclasses.MISSING}
    assert defaults, f"sae_evals.{name} shares no key with {evaluation.config.__name__}"
    evaluation.config.from_dict({**required, **defaults})


def test_unregistered_evaluation_is_a_one_line_error():
    with pytest.raises(InputError, match="evaluation 'bogus' is not registered"):
        get_evaluation("bogus")


def test_headline_model_rejects_a_malformed_line():
    line = {"metric": "m", "value": 1.0, "ci_low": None, "ci_high": None, "null": 0.0, "claim": ""}
    Headline.check(line)
    with pytest.raises(InputError, match="Headline.value"):
        Headline.check({**line, "value": "high"})
    with pytest.raises(InputError, match="Headline.claim"):
        Headline.check({key: value for key, value in line.items() if key != "claim"})


class _Broken(EvalResult):
    """A meta-structure result whose document is missing every field."""

    OUTPUT = MetaStructureOutput

    def document(self) -> dict[str, Any]:
        return {"n_rows": 3}

    def table(self) -> pd.DataFrame:
        return pd.DataFrame({"rows": ["decoder"]})


def test_a_result_is_validated_when_written_and_nothing_is_written_then(tmp_path):
    with pytest.raises(InputError, match="MetaStructureOutput"):
        write_evaluation(tmp_path, "meta_structure", _Broken())
    assert list(tmp_path.iterdir()) == []
