"""The whole DAG on config/ci.yaml, twice from empty stores: it runs, every column is
filled, and the synthesis files are byte-identical (reproducibility)."""

from __future__ import annotations

import json

import pandas as pd
import pytest
from conftest import RERUN_TRIGGERS, planned_jobs, run_snakemake

pytestmark = pytest.mark.integration

SYNTHESIS = ("cross_modal_synthesis.md", "cross_modal_synthesis.json", "cross_modal_synthesis.parquet")
COLUMNS = ("llm_hellaswag", "llm_squad", "tsfm_etth1")


def test_ci_config_fills_every_column(ci_runs):
    results = ci_runs[0] / "results"
    markdown = (results / "cross_modal_synthesis.md").read_text()
    for column in COLUMNS:
        assert column in markdown
    table = pd.read_parquet(results / "cross_modal_synthesis.parquet")
    main = table[table["section"] == "main"]
    assert set(main["column"]) == set(COLUMNS)
    aurocs = main[main["row"].str.startswith("P") & main["row"].str.endswith("AUROC")]
    assert len(aurocs) == 5 * len(COLUMNS) and aurocs["value"].between(0, 1).all()
    assert main["node_id"].str.fullmatch(r"[0-9a-f]{12}").all()
    assert "## Summary" in markdown and "**llm**" in markdown and "**tsfm**" in markdown
    assert any((results / "figures").glob("*ladder.png"))


def test_first_run_built_its_nodes_in_the_warm_worker_and_the_second_did_not(ci_runs):
    """The byte-identity tests below compare a warm-worker run with a run of one process per job."""
    in_worker = [sum("warm worker's child" in log.read_text() for log in (run / "logs").glob("*/*.log")) for run in ci_runs]
    n_logs = len(list((ci_runs[0] / "logs").glob("*/*.log")))
    assert in_worker[1] == 0
    # onstart returns once the worker has imported: no job, not even the first, runs in its own process.
    assert n_logs and in_worker[0] == n_logs, (in_worker, n_logs)


def test_two_runs_from_empty_stores_are_byte_identical(ci_runs):
    first, second = (run / "results" for run in ci_runs)
    for name in SYNTHESIS:
        assert (first / name).read_bytes() == (second / name).read_bytes(), name


def test_every_node_file_is_byte_identical_across_runs(ci_runs):
    """Node-level determinism: the same ids in both stores, and every file of every node
    (weights, caches, tables, JSON, figures) with the same sha256 in both manifests."""
    first, second = ({p.parent.relative_to(run / "results" / "store"): json.loads(p.read_text())["files"]
                      for p in (run / "results" / "store").glob("*/*/manifest.json")} for run in ci_runs)  # fmt: skip
    assert first.keys() == second.keys()
    differing = {str(node): sorted(name for name in files if files[name] != second[node].get(name))
                 for node, files in first.items() if files != second[node]}  # fmt: skip
    assert differing == {}


def test_store_verifies_and_nothing_is_left_to_do(ci_runs):
    workdir = ci_runs[0]
    from sae_difficulty.pipeline.store import iter_store, verify_node

    nodes = list(iter_store(workdir / "results" / "store"))
    assert nodes and all(node.complete for node in nodes)
    assert all(verify_node(node.path) == [] for node in nodes)
    dry = run_snakemake(["-n", "--configfile", "config/ci.yaml", *RERUN_TRIGGERS], cwd=workdir)
    assert planned_jobs(dry.stdout) == {}


EVALUATIONS = {"eval_cross_domain": "cross_domain", "eval_sparse_probing": "sparse_probing",
               "eval_transcoder": "transcoder", "eval_steering": "steering", "eval_circuit": "circuit",
               "eval_meta_structure": "meta_structure"}  # fmt: skip


def test_evaluation_suite_outputs_validate_and_are_reproducible(ci_runs):
    import jsonschema

    from sae_difficulty.evals.base import get_evaluation

    first, second = (run / "results" for run in ci_runs)
    for stage, name in EVALUATIONS.items():
        (node,) = [p.parent for p in (first / "store" / stage).glob("*/manifest.json")]
        result = json.loads((node / f"{name}.json").read_text())
        jsonschema.validate(result, get_evaluation(name).output.model_json_schema())  # the generated schema
        twin = second / "store" / stage / node.name / f"{name}.json"
        assert twin.read_bytes() == (node / f"{name}.json").read_bytes(), stage
    page = (first / "sae_evals.md").read_text()
    assert page.count("\n## ") == len(EVALUATIONS) and (first / "sae_evals" / "top_contexts.md").is_file()


def test_ledger_has_one_row_per_result_node(ci_runs):
    from sae_difficulty.reports.ledger import RESULT_STAGES

    results = ci_runs[0] / "results"
    ledger = pd.read_parquet(results / "ledger.parquet")
    built = {p.parent.name for stage in RESULT_STAGES for p in (results / "store" / stage).glob("*/manifest.json")}
    assert set(ledger["node"]) == built and len(ledger) == len(built)
    assert set(ledger["status"]) <= {"reproduced", "novel", "novel (contradicts claim)", "inconclusive"}
    assert (ledger["wall_time_s"] >= 0).all() and ledger["model"].astype(bool).all()
