"""The original study's route, offline: ``config/paper.yaml`` + ``config/paper-smoke.yaml`` run the
whole DAG to ``results/cross_modal_synthesis.md`` from hub names alone, against a Hugging Face
cache laid out as a cluster's login node has it (tests/hub_cache.py), with every library told it
is offline. Nothing of the demo path may be used: every backbone node names a hub model.

The test's own overlay only swaps the expensive slots for smaller members of the same families
(EleutherAI/pythia-160m for pythia-2.8b, amazon/chronos-t5-mini for chronos-t5-base), whose
random weights are cheap to build (with those slots' layers at the same relative depths), and
sets ``gpus: 0`` (resources only)."""

from __future__ import annotations

import json

import pandas as pd
import pytest
import yaml
from conftest import RERUN_TRIGGERS, run_snakemake, workflow_copy
from hub_cache import offline_env

pytestmark = [pytest.mark.paper_route, pytest.mark.slow]

# The expensive slots' layers at the same relative depths as config/paper.yaml's for the
# published members (pythia-2.8b: 16, 24 of 32 -> 6, 9 of 12; chronos-t5-base: 6, 11 of 12 -> 2, 3 of 4).
TEST_OVERLAY = {
    "name": "paper-route-test",
    "gpus": 0,
    "llm": {"backbones": {"large": {"hub": "EleutherAI/pythia-160m"}}, "layers": {"large": [6, 9]}},
    "tsfm": {"backbones": {"large": {"hub": "amazon/chronos-t5-mini"}}, "layers": {"large": [2, 3]}},
}
CHEAP_HUBS = {"EleutherAI/pythia-410m", "amazon/chronos-t5-small"}
COLUMNS = ("llm_hellaswag", "llm_squad", "tsfm_etth1")


@pytest.fixture(scope="module")
def paper_run(hf_home, tmp_path_factory):
    workdir = workflow_copy(tmp_path_factory.mktemp("paper-route") / "workflow")
    (workdir / "config" / "paper-route-test.yaml").write_text(yaml.safe_dump(TEST_OVERLAY, sort_keys=False))
    configs = ["config/paper.yaml", "config/paper-smoke.yaml", "config/paper-route-test.yaml"]
    result = run_snakemake(["results/cross_modal_synthesis.md", "--cores", "2", "--configfile", *configs, *RERUN_TRIGGERS],
                           cwd=workdir, env=offline_env(hf_home), timeout=3600)  # fmt: skip
    return workdir, result


def test_paper_config_runs_offline_to_the_synthesis(paper_run):
    workdir, result = paper_run
    assert result.returncode == 0
    results = workdir / "results"
    markdown = (results / "cross_modal_synthesis.md").read_text()
    table = pd.read_parquet(results / "cross_modal_synthesis.parquet")
    main = table[table["section"] == "main"]
    assert set(main["column"]) == set(COLUMNS)  # both legs, every dataset
    for column in COLUMNS:
        assert column in markdown
    aurocs = main[main["row"].str.startswith("P") & main["row"].str.endswith("AUROC")]
    assert len(aurocs) == 5 * len(COLUMNS) and aurocs["value"].between(0, 1).all()


def test_every_backbone_node_is_a_hub_model(paper_run):
    """No demo backbone anywhere in the store: each one was read from the cache by its hub name."""
    store = paper_run[0] / "results" / "store"
    specs = [json.loads(p.read_text()) for p in (store / "backbone").glob("*/spec.json")]
    assert len(specs) == 4
    hubs = {spec["params"].get("hub") for spec in specs}
    assert hubs == CHEAP_HUBS | {"EleutherAI/pythia-160m", "amazon/chronos-t5-mini"}
    sources = [json.loads(p.read_text()) for p in (store / "backbone").glob("*/source.json")]
    assert sources and all(source["hub"] for source in sources)
    task_sources = {json.loads(p.read_text())["source"] for p in (store / "tasks").glob("*/task.json")}
    assert task_sources == {"Rowan/hellaswag", "rajpurkar/squad"}  # LM records from the hub, not generated
