"""Config validation: defaults filled, and one-line errors naming the key at parse time."""

from __future__ import annotations

import json
import shutil

import pytest
import yaml
from conftest import REPO, run_snakemake, workflow_copy

from sae_difficulty.pipeline.config import (
    check_store_path,
    layer_config,
    load_config,
    resolve_config,
    validate_config,
)
from sae_difficulty.utils.errors import InputError


@pytest.mark.parametrize("name", ["config.yaml", "ci.yaml", "paper.yaml"])
def test_shipped_configs_validate(name):
    config = load_config(REPO / "config" / name)
    assert config["sae"]["architectures"] and config["probe"]["poolings"]


def test_defaults_are_filled():
    config = validate_config({"name": "x"})
    assert config["store"] == "results/store"
    assert config["llm"]["backbones"]["small"]["hub"] is None
    assert config["tsfm"]["datasets"]["etth1"]["target"] == "OT"


@pytest.mark.parametrize(
    "config, expected",
    [
        ({"name": "x", "sae": {"k": "sixteen"}}, ["sae.k", "an integer", "sixteen"]),
        ({"name": "x", "sae": {"kk": 3}}, ["unknown config key 'kk'", "under 'sae'"]),
        ({"seed": 1}, ["missing required config key 'name'"]),
        ({"name": "x", "labels": {"scope": "everything"}}, ["labels.scope", "dataset", "train"]),
    ],
)
def test_errors_are_one_line_naming_the_key(config, expected):
    with pytest.raises(InputError) as info:
        validate_config(config)
    message = str(info.value)
    assert "\n" not in message
    for fragment in expected:
        assert fragment in message


@pytest.mark.parametrize(
    "override, fragment",
    [
        ({"sae": {"k": "sixteen"}}, "config key 'sae.k': expected an integer"),
        ({"probe": {"bogus": 1}}, "unknown config key 'bogus' under 'probe'"),
        ({"sae": {"seeds": [0, 0]}}, "config key 'sae.seeds': 0 appears 2 times"),
        ({"store": "README.md/store"}, "README.md is a regular file, so the store cannot be created under it"),
    ],
)
def test_snakemake_fails_at_parse_time_with_the_key(tmp_path, override, fragment):
    # The workflow's own files only: a copy of the repository would also copy the virtual
    # environment CI installs inside it (gigabytes per parameter).
    workdir = workflow_copy(tmp_path / "wf")
    shutil.copy2(REPO / "README.md", workdir / "README.md")  # the regular file the store case points under
    config = yaml.safe_load((REPO / "config" / "ci.yaml").read_text())
    config.update(override)
    (workdir / "broken.yaml").write_text(yaml.safe_dump(config))
    result = run_snakemake(["-n", "--configfile", "broken.yaml"], cwd=workdir, check=False)
    assert result.returncode != 0
    lines = [line for line in (result.stdout + result.stderr).splitlines() if fragment in line]
    assert lines, result.stderr[-2000:]


@pytest.mark.parametrize("name", ["config.yaml", "ci.yaml", "paper.yaml"])
def test_shipped_configs_plan_a_dag(name, tmp_path):
    """Every shipped config parses, validates and plans the whole DAG (resources included)."""
    result = run_snakemake(["-n", "--configfile", f"config/{name}", "--directory", str(REPO)], cwd=REPO, check=False)
    assert result.returncode == 0, (result.stdout + result.stderr)[-3000:]
    assert "synthesis" in result.stdout and "Exception" not in result.stdout + result.stderr


# --- the config of a run: base + overlays, exactly as Snakemake layers them -------------

SNAKEFILE_DUMPING_CONFIG = """
import json
configfile: "base.yaml"
with open("merged.json", "w") as handle:
    json.dump(config, handle, sort_keys=True)
rule all:
    input: []
"""


def test_resolve_config_layers_overlays_like_snakemake(tmp_path):
    """Snakemake itself merges base + two overlays; resolve_config must give the same config."""
    base = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    (tmp_path / "base.yaml").write_text(yaml.safe_dump(base))
    shutil.copy(REPO / "config" / "ci.yaml", tmp_path / "ci.yaml")
    # The second overlay changes a nested key of the first and a list: the later file wins.
    (tmp_path / "extra.yaml").write_text(yaml.safe_dump({"sae": {"k": 4}, "llm": {"layers": [0]}, "name": "extra"}))
    (tmp_path / "Snakefile").write_text(SNAKEFILE_DUMPING_CONFIG)
    run_snakemake(["-n", "--cores", "1", "--configfile", "ci.yaml", "extra.yaml"], cwd=tmp_path)
    merged_by_snakemake = json.loads((tmp_path / "merged.json").read_text())

    resolved = resolve_config([tmp_path / "ci.yaml", tmp_path / "extra.yaml"], base=tmp_path / "base.yaml")
    assert resolved == validate_config(merged_by_snakemake)
    # the base's keys survive where the overlays are silent (ci.yaml has no warmup_steps)
    assert resolved["llm"]["backbones"]["small"]["warmup_steps"] == base["llm"]["backbones"]["small"]["warmup_steps"]
    assert resolved["sae"]["k"] == 4 and resolved["llm"]["layers"] == [0] and resolved["sae"]["seeds"] == [0, 1]
    assert resolved != load_config(tmp_path / "ci.yaml"), "the overlay alone must differ from the run's config"


@pytest.mark.parametrize(
    "base, overlay",
    [
        ({"a": {"b": 1, "c": [1, 2]}, "d": 1}, {"a": {"c": [3]}, "e": {"f": 2}}),
        ({"a": {"b": {"c": 1, "d": 2}}}, {"a": {"b": {"d": 3}}, "a2": None}),
    ],
)
def test_layer_config_is_snakemakes_update_config(base, overlay):
    from snakemake.utils import update_config

    expected = json.loads(json.dumps(base))
    update_config(expected, overlay)
    assert layer_config(json.loads(json.dumps(base)), overlay) == expected


def _one_line(error: pytest.ExceptionInfo) -> str:
    message = str(error.value)
    assert "\n" not in message
    return message


def test_schema_or_directory_passed_as_a_config_names_the_file():
    with pytest.raises(InputError) as error:
        resolve_config([REPO / "config" / "schema.yaml"])
    assert "schema.yaml is a JSON schema" in _one_line(error)
    with pytest.raises(InputError) as error:
        resolve_config([REPO / "config"])
    assert "is a directory; expected a YAML file" in _one_line(error)


@pytest.mark.parametrize(
    "override, fragments",
    [
        ({"sae": {"seeds": [0, 0]}}, ["'sae.seeds'", "0 appears 2 times"]),
        ({"sae": {"expansions": [2, 2]}}, ["'sae.expansions'", "2 appears 2 times"]),
        ({"sae": {"architectures": ["topk", "topk"]}}, ["'sae.architectures'", "'topk' appears 2 times"]),
        ({"llm": {"layers": [1, 1]}}, ["'llm.layers'", "1 appears 2 times"]),
        ({"probe": {"poolings": ["last", "last"]}}, ["'probe.poolings'", "'last' appears 2 times"]),
        ({"llm": {"datasets": {"hellaswag": {"enabled": False}, "squad": {"enabled": False}}}},
         ["'llm.datasets'", "every dataset is disabled"]),
        ({"tsfm": {"datasets": {"etth1": {"enabled": False}}}}, ["'tsfm.datasets'", "every dataset is disabled"]),
        ({"sae": {"k": 300}}, ["'sae.k'", "300 active features exceed", "width 256"]),
        ({"modular": {"p": 91}}, ["'modular.p'", "91 is not prime"]),
        ({"modular": {"layer": 2}}, ["'modular.layer'", "block 2 does not exist"]),
        ({"llm": {"layers": [1, 2]}}, ["'llm.layers'", "layer 2 does not exist", "n_layers = 2"]),
        ({"tsfm": {"layers": [3]}}, ["'tsfm.layers'", "layer 3 does not exist"]),
        ({"tsfm": {"datasets": {"etth1": {"context_length": 256}}}},
         ["'tsfm.datasets.etth1.context_length'", "256 exceeds", "context_length 128"]),
    ],
)
def test_values_that_used_to_pass_silently_fail_at_parse_time(override, fragments):
    config = validate_config({"name": "x"})  # the defaults are valid...
    broken = layer_config({"name": "x"}, override)
    with pytest.raises(InputError) as error:
        validate_config(broken)  # ...and each override alone breaks them
    message = _one_line(error)
    for fragment in fragments:
        assert fragment in message, message
    assert config["modular"]["p"] == 113


def test_hub_backbones_leave_depth_and_width_to_the_job():
    config = validate_config({"name": "x", "llm": {"backbones": {"small": {"hub": "EleutherAI/pythia-410m"}}, "layers": [20]}})
    assert config["llm"]["layers"] == [20]


def test_csv_checksum_is_checked_when_the_run_is_parsed(tmp_path):
    csv = tmp_path / "my_etth1.csv"
    csv.write_text((REPO / "resources" / "ETTh1.csv").read_text().replace("OT", "OT ", 1))
    overlay = tmp_path / "mine.yaml"
    overlay.write_text(yaml.safe_dump({"store": str(tmp_path / "store"), "tsfm": {"datasets": {"etth1": {"path": str(csv)}}}}))
    resolve_config([overlay])  # the CLI does not need the file
    with pytest.raises(InputError) as error:
        resolve_config([overlay], check_files=True)
    message = _one_line(error)
    assert f"tsfm.datasets.etth1.path: {csv} has sha256" in message and "set tsfm.datasets.etth1.sha256 to null" in message
    overlay.write_text(yaml.safe_dump({"store": str(tmp_path / "store"), "tsfm": {"datasets": {"etth1": {"path": str(csv), "sha256": None}}}}))
    assert resolve_config([overlay], check_files=True)["tsfm"]["datasets"]["etth1"]["sha256"] is None


@pytest.mark.parametrize("layout, fragment", [
    ("file", "exists and is not a directory"),
    ("under_file", "is a regular file, so the store cannot be created under it"),
])  # fmt: skip
def test_store_that_cannot_be_a_directory_fails_before_work(tmp_path, layout, fragment):
    (tmp_path / "a_file").write_text("not a directory")
    store = tmp_path / "a_file" if layout == "file" else tmp_path / "a_file" / "store"
    overlay = tmp_path / "store.yaml"
    overlay.write_text(yaml.safe_dump({"store": str(store)}))
    with pytest.raises(InputError) as error:
        resolve_config([overlay], check_files=True)
    assert fragment in _one_line(error)
    with pytest.raises(InputError):
        check_store_path(store)
    assert check_store_path(tmp_path / "new" / "store") == tmp_path / "new" / "store"
