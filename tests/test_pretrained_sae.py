"""A published SAE in place of trained ones (``sae.pretrained``), offline.

The Hugging Face cache (tests/hub_cache_saes.py) holds what ``hf download`` leaves for
EleutherAI/pythia-70m-deduped and sae-lens' release ``pythia-70m-deduped-res-sm`` (its registry
repository and folder, its files, random weights of the real shapes). With ``HF_HUB_OFFLINE=1``:

- unit tests: sae-lens' registry resolves the release to the cached files, whose sha256 the
  project records; the stage refuses an SAE of another hook with one line;
- the workflow test (marker ``pretrained_sae``): config/pythia70m-pretrained.yaml plus its smoke
  overlay run the difficulty study (probes, causal patching, selective prediction) and the SAE
  quality node to the synthesis; the SAE node records release, id and file hashes, holds the
  release's weights, and no SAE is trained.
"""

from __future__ import annotations

import hashlib
import json
import textwrap
from pathlib import Path

import numpy as np
import pytest
from conftest import REPO, RERUN_TRIGGERS, run_snakemake, workflow_copy
from hub_cache import commit_hash, offline_env, run_offline
from hub_cache_saes import (
    RES_SM_D_IN,
    RES_SM_D_SAE,
    RES_SM_RELEASE,
    RES_SM_REPO,
    build_hf_home_with_saes,
    write_res_sm_release,
)

from sae_difficulty.pipeline.config import resolve_config
from sae_difficulty.pipeline.study import build_plan
from sae_difficulty.saes.pretrained import registry_location, require_hook
from sae_difficulty.utils.errors import InputError

SAE_ID = "blocks.3.hook_resid_post"
RELEASE_FILES = ("3-res-sm/cfg.json", "3-res-sm/sae_weights.safetensors", "3-res-sm/sparsity.safetensors")
CONFIGS = ["config/pythia70m-pretrained.yaml", "config/pythia70m-pretrained-smoke.yaml"]


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _fixture_hashes(hf_home: Path) -> dict[str, str]:
    """sha256 of the release's files as the fixture wrote them (through the snapshot's symlinks)."""
    snapshot = hf_home / "hub" / f"models--{RES_SM_REPO.replace('/', '--')}" / "snapshots" / commit_hash(RES_SM_REPO)
    return {name: _sha256(snapshot / name) for name in RELEASE_FILES}


@pytest.fixture(scope="module")
def release_home(tmp_path_factory) -> Path:
    """A cache with only the release (no model, no datasets): what the unit tests read."""
    home = tmp_path_factory.mktemp("hf-release")
    write_res_sm_release(home)
    return home


# ----------------------------------------------------------------------------- unit tests


def test_registry_names_the_fixture_layout():
    """The fixture's repository and folder are the ones sae-lens' registry gives for the release."""
    assert registry_location(RES_SM_RELEASE, SAE_ID) == (RES_SM_REPO, "3-res-sm")


def test_unknown_release_or_id_is_a_one_line_error():
    with pytest.raises(InputError, match=r"sae\.pretrained\.llm\.release.*no-such-release") as error:
        registry_location("no-such-release", SAE_ID)
    assert "\n" not in str(error.value)
    with pytest.raises(InputError, match=r"sae\.pretrained\.llm\.sae_id.*blocks\.9\.hook_resid_post.*blocks\.0"):
        registry_location(RES_SM_RELEASE, "blocks.9.hook_resid_post")


def test_hook_of_another_layer_is_refused():
    require_hook(SAE_ID, 3, RES_SM_RELEASE, SAE_ID)  # the probed layer's residual stream: accepted
    with pytest.raises(InputError, match=r"'blocks\.3\.hook_resid_post'; expected 'blocks\.2\.hook_resid_post'") as error:
        require_hook(SAE_ID, 2, RES_SM_RELEASE, SAE_ID)
    assert "\n" not in str(error.value) and "sae.pretrained.llm" in str(error.value)


def test_registry_resolution_offline_records_the_cached_files(release_home):
    """SAE.from_pretrained reads the cache with HF_HUB_OFFLINE=1; the recorded hashes are the files'."""
    resolved = run_offline(textwrap.dedent(f"""
        import json
        from sae_difficulty.saes.pretrained import load_pretrained
        sae, files = load_pretrained({RES_SM_RELEASE!r}, {SAE_ID!r})
        print(json.dumps({{"files": files.to_dict(), "hook": sae.cfg.metadata.hook_name,
                          "shape": [sae.cfg.d_in, sae.cfg.d_sae], "architecture": sae.cfg.architecture()}}))
    """), release_home)
    assert resolved["hook"] == SAE_ID and resolved["shape"] == [RES_SM_D_IN, RES_SM_D_SAE]
    assert resolved["architecture"] == "standard"
    files = resolved["files"]
    assert (files["repo_id"], files["path"], files["revision"]) == (RES_SM_REPO, "3-res-sm", commit_hash(RES_SM_REPO))
    assert files["files"] == _fixture_hashes(release_home)


def test_stage_refuses_the_sae_of_another_layer(release_home, tmp_path):
    """The sae_pretrained stage, asked for layer 2 with the layer-3 SAE: a one-line InputError, no SAE saved."""
    from sae_difficulty.saes.cache import write_training_cache

    rows = np.random.default_rng(0).normal(size=(64, RES_SM_D_IN)).astype(np.float32)
    write_training_cache(tmp_path / "acts" / "activations.zarr", rows, rows)
    out = tmp_path / "node"
    outcome = run_offline(textwrap.dedent(f"""
        import json, sys
        sys.path.insert(0, {str(REPO / "tests")!r})
        from pathlib import Path
        from conftest import node_context
        from sae_difficulty.stages import sae_pretrained
        from sae_difficulty.utils.errors import InputError
        params = {{"modality": "llm", "layer": 2, "release": {RES_SM_RELEASE!r}, "sae_id": {SAE_ID!r},
                   "encode_fidelity": {{"n_rows": 16}}}}
        ctx = node_context("sae_pretrained", params, Path({str(out)!r}), {{"activations": Path({str(tmp_path / "acts")!r})}})
        try:
            sae_pretrained.build(ctx)
            print(json.dumps({{"error": None}}))
        except InputError as error:
            print(json.dumps({{"error": str(error)}}))
    """), release_home)
    assert outcome["error"] and "\n" not in outcome["error"]
    assert "expected 'blocks.2.hook_resid_post'" in outcome["error"]
    assert not (out / "sae").exists()


@pytest.mark.parametrize(("configs", "expected"), [
    (CONFIGS[:1], (RES_SM_RELEASE, SAE_ID, 3)),
    (CONFIGS, (RES_SM_RELEASE, SAE_ID, 3)),
    (["config/gemma-scope.yaml"], ("gemma-scope-2b-pt-res-canonical", "layer_12/width_16k/canonical", 12)),
])  # fmt: skip
def test_pretrained_configs_plan_no_trained_sae(configs, expected):
    """Each example config over config/config.yaml: one published SAE at its layer, no trained SAE
    in the study, and the codes, causal and quality nodes (and the synthesis's SAE row) read it."""
    plan = build_plan(resolve_config([REPO / f for f in configs], base=REPO / "config" / "config.yaml"))
    (published,) = plan.stage("sae_pretrained")
    assert (published.params["release"], published.params["sae_id"], published.params["layer"]) == expected
    assert not [n for n in plan.stage("sae") if n.key.startswith("llm/")]
    for stage in ("codes", "causal", "sae_quality"):
        nodes = plan.stage(stage)
        assert nodes and all(n.parents["sae"] is published for n in nodes)
    (row,) = plan.synthesis.params["sae_rows"]
    assert (row["release"], row["sae_id"], row["layer"]) == expected


def test_synthesis_names_a_published_sae_by_release_and_id():
    from sae_difficulty.reports.synthesis import sae_table

    quality = {"explained_variance": 0.8, "mean_l0": 83.0, "dead_fraction": 0.0, "spliced": {"delta_nats": 0.1}}
    rows = [{"role": "q1", "modality": "llm", "layer": 12, "architecture": "pretrained", "expansion": 0, "seed": 0,
             "release": "gemma-scope-2b-pt-res-canonical", "sae_id": "layer_12/width_16k/canonical"},
            {"role": "q2", "modality": "llm", "layer": 1, "architecture": "topk", "expansion": 4, "seed": 0}]  # fmt: skip
    table = sae_table(rows, {"q1": (quality, "a"), "q2": (quality, "b")}, {})
    assert list(table["sae"]) == ["gemma-scope-2b-pt-res-canonical/layer_12/width_16k/canonical", "topk x4"]


def test_pretrained_sae_needs_one_layer(tmp_path):
    overlay = tmp_path / "two-layers.yaml"
    overlay.write_text(json.dumps({"sae": {"pretrained": {"llm": {"release": RES_SM_RELEASE, "sae_id": SAE_ID}}},
                                   "llm": {"layers": [1, 0]}}))  # fmt: skip
    with pytest.raises(InputError, match=r"'llm\.layers'.*exactly one layer"):
        resolve_config([overlay], base=REPO / "config" / "config.yaml")


# ----------------------------------------------------------------------------- the workflow, offline


#: The test's own overlay: the cascade's expensive slot gets the cached model too (pythia-410m-deduped's
#: random weights would cost more than the whole run), so the synthesis runs; the probed model stays.
TEST_OVERLAY = {"name": "pretrained-test", "llm": {"backbones": {"large": {"hub": "EleutherAI/pythia-70m-deduped"}}}}


@pytest.fixture(scope="module")
def pretrained_run(tmp_path_factory):
    hf_home = build_hf_home_with_saes(tmp_path_factory.mktemp("hf-home-saes"))
    workdir = workflow_copy(tmp_path_factory.mktemp("pretrained") / "workflow")
    (workdir / "config" / "pretrained-test.yaml").write_text(json.dumps(TEST_OVERLAY))
    configs = [*CONFIGS, "config/pretrained-test.yaml"]
    plan = build_plan(resolve_config([workdir / f for f in configs], base=workdir / "config" / "config.yaml"))
    result = run_snakemake(["results/cross_modal_synthesis.md", "--cores", "2", "--configfile", *configs, *RERUN_TRIGGERS],
                           cwd=workdir, env=offline_env(hf_home), check=False, timeout=1800)  # fmt: skip
    return workdir, hf_home, plan, result


@pytest.mark.pretrained_sae
@pytest.mark.slow
def test_pretrained_sae_runs_the_study_offline(pretrained_run):
    workdir, hf_home, plan, result = pretrained_run
    assert result.returncode == 0, f"{result.stdout[-3000:]}\n{result.stderr[-5000:]}"
    store = workdir / "results" / "store"
    (published,) = plan.stage("sae_pretrained")
    node = store / "sae_pretrained" / published.id
    record = json.loads((node / "pretrained.json").read_text())
    assert (record["release"], record["sae_id"], record["hook_name"]) == (RES_SM_RELEASE, SAE_ID, SAE_ID)
    assert (record["repo_id"], record["path"], record["revision"]) == (RES_SM_REPO, "3-res-sm", commit_hash(RES_SM_REPO))
    assert record["files"] == _fixture_hashes(hf_home)
    assert record["encode_fidelity"]["passed"] is True
    # The node's SAE is the release's: the same decoder as the cached file.
    from safetensors.numpy import load_file

    cached = load_file(hf_home / "hub" / f"models--{RES_SM_REPO.replace('/', '--')}" / "snapshots" / commit_hash(RES_SM_REPO) / "3-res-sm" / "sae_weights.safetensors")
    saved = load_file(node / "sae" / "sae_weights.safetensors")
    np.testing.assert_array_equal(saved["W_dec"], cached["W_dec"])
    # Nothing trained: no sae node in the store at all.
    assert not (store / "sae").exists() or not any((store / "sae").iterdir())
    for stage in ("probe", "causal", "selective", "sae_quality", "synthesis"):
        built = {p.parent.name for p in (store / stage).glob("*/manifest.json")}
        assert built == {n.id for n in plan.stage(stage)}
    # The synthesis's SAE table names the published SAE.
    assert f"{RES_SM_RELEASE}/{SAE_ID}" in (workdir / "results" / "cross_modal_synthesis.md").read_text()


@pytest.mark.pretrained_sae
@pytest.mark.slow
def test_ledger_row_names_the_release(pretrained_run):
    from sae_difficulty.reports.ledger import describe_node, ledger_rows

    workdir, _, plan, result = pretrained_run
    assert result.returncode == 0
    (quality,) = plan.stage("sae_quality")
    table = ledger_rows([describe_node(quality)], workdir / "results" / "store")
    (row,) = table.to_dict("records")
    assert row["params"].startswith(f"release={RES_SM_RELEASE} sae_id={SAE_ID}")
    assert row["metric"] and row["hook_point"] == SAE_ID
