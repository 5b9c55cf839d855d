"""The evaluation suite's nodes in the study plan: shape, layer checks, and what a parameter change touches."""

from __future__ import annotations

import copy

import pytest

from sae_difficulty.pipeline.config import load_config
from sae_difficulty.pipeline.study import build_plan
from sae_difficulty.pipeline.study_evals import EVAL_STAGE_VERSIONS, EVAL_STAGES
from sae_difficulty.utils.errors import InputError


@pytest.fixture(scope="module")
def ci_config():
    return load_config("config/ci.yaml")


def _ids(plan):
    return {node.key: node.id for node in plan.nodes.values()}


def test_suite_nodes_hang_off_the_primary_lm(ci_config):
    plan = build_plan(copy.deepcopy(ci_config))
    assert {stage for stage, nodes in plan.evals.items() if nodes} == set(EVAL_STAGES) - {"eval_external"}
    cross = plan.evals["eval_cross_domain"][0]
    domain_saes = {role: node for role, node in cross.parents.items() if role.startswith("sae_")}
    assert set(domain_saes) == {f"sae_{d}_{a}" for d in ("prose", "code") for a in ci_config["sae_evals"]["architectures"]}
    for role, sae in domain_saes.items():
        assert sae.stage == "sae" and sae.parents["activations"].params["domain"] == role.split("_")[1]
    primary_backbone = plan.key(f"llm/{ci_config['llm']['primary_backbone']}")
    assert cross.parents["backbone"] is primary_backbone
    probing = plan.evals["eval_sparse_probing"][0]
    assert {"hellaswag__evaluate", "squad__codes", "sae"} <= set(probing.parents)


def test_layer_outside_the_study_layers_is_a_one_line_error(ci_config):
    config = copy.deepcopy(ci_config)
    config["sae_evals"]["layer"] = 7
    with pytest.raises(InputError, match=r"sae_evals.layer=7 is not one of llm.layers"):
        build_plan(config)


def test_disabled_suite_plans_nothing(ci_config):
    config = copy.deepcopy(ci_config)
    config["sae_evals"]["enabled"] = False
    plan = build_plan(config)
    # The synthetic ground-truth study's eval_ground_truth nodes belong to `synthetic`, not to the suite.
    assert plan.evals == {} and not [n for n in plan.nodes.values() if n.stage in EVAL_STAGE_VERSIONS]


def test_a_steering_parameter_moves_only_the_steering_node(ci_config):
    before = _ids(build_plan(copy.deepcopy(ci_config)))
    config = copy.deepcopy(ci_config)
    config["sae_evals"]["steering"]["n_new_tokens"] += 1
    after = _ids(build_plan(config))
    changed = {key for key in before if before[key] != after.get(key)}
    assert changed == {"evals/L1/steering"}


def test_external_sae_content_is_part_of_its_id(ci_config, tmp_path):
    weights = tmp_path / "ae.pt"
    weights.write_bytes(b"one")
    config = copy.deepcopy(ci_config)
    config["sae_evals"]["external_saes"] = [{"name": "mine", "path": str(weights), "format": "dictionary_learning"}]
    first = build_plan(copy.deepcopy(config)).evals["eval_external"][0].id
    weights.write_bytes(b"two")
    assert build_plan(config).evals["eval_external"][0].id != first
