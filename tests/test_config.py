"""Config validation: defaults filled, and one-line errors naming the key at parse time."""

from __future__ import annotations

import shutil

import pytest
import yaml
from conftest import REPO, run_snakemake

from sae_difficulty.pipeline.config import load_config, validate_config
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
    ],
)
def test_snakemake_fails_at_parse_time_with_the_key(tmp_path, override, fragment):
    workdir = tmp_path / "wf"
    shutil.copytree(REPO, workdir, ignore=shutil.ignore_patterns(".git", ".venv", "results", ".snakemake", "logs", "tests"))
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
