"""add_synthetic_nodes: the ground-truth study's nodes, the one-at-a-time sweep, the preset and the claim's scope."""

from __future__ import annotations

from sae_difficulty.pipeline.config import validate_config
from sae_difficulty.pipeline.plan import Plan
from sae_difficulty.pipeline.study import STAGE_VERSIONS, build_plan
from sae_difficulty.pipeline.study_synthetic import (
    SYNTHSAEBENCH_16K,
    Cell,
    add_synthetic_nodes,
    model_params,
    published_match,
    role,
)
from sae_difficulty.reports.ledger import RESULT_STAGES, describe_node

SAE_KEYS = {"architecture", "expansion", "seed", "k", "l1_coefficient", "lr", "training_tokens", "batch_size"}


def _config(**synthetic) -> dict:
    return validate_config({"name": "t", "synthetic": synthetic})


def _plan(config: dict) -> tuple[Plan, dict]:
    plan = Plan(STAGE_VERSIONS)
    return plan, add_synthetic_nodes(plan, config)


def test_defaults_sweep_l0_and_width_one_at_a_time_for_every_recipe() -> None:
    _, handles = _plan(_config())
    cells = sorted({name for name, _ in handles["saes"]})
    assert cells == sorted(["topk-x8-k6", "topk-x8-k12", "topk-x4-k6", "batchtopk-x8-k6", "batchtopk-x8-k12",
                            "batchtopk-x4-k6", "relu-x8-l1_5", "relu-x8-l1_4", "relu-x4-l1_5"])  # fmt: skip
    assert len(handles["saes"]) == len(handles["evals"]) == 27  # 9 cells x 3 seeds
    for (name, seed), sae in handles["saes"].items():
        assert sae.stage == "sae" and set(sae.params) == SAE_KEYS and sae.parents == {"activations": handles["activations"]}
        evaluation = handles["evals"][(name, seed)]
        assert evaluation.parents == {"sae": sae, "model": handles["model"]}
        assert not evaluation.params["published"]["settings_match"]
    answer = handles["answer"]
    assert answer.parents["model"] is handles["model"] and answer.parents["activations"] is handles["activations"]
    assert len(answer.parents) == 2 + 2 * 27
    assert handles["activations"].parents == {"model": handles["model"]}


def test_disabled_declares_nothing_and_leaves_the_synthesis_without_a_ground_truth_role() -> None:
    plan, handles = _plan(_config(enabled=False))
    assert handles == {} and not plan.nodes
    study = build_plan(validate_config({"name": "t", "synthetic": {"enabled": False}}))
    assert "ground_truth_role" not in study.synthesis.params
    enabled = build_plan(validate_config({"name": "t"}))
    assert enabled.synthesis.params["ground_truth_role"] in enabled.synthesis.parents


def test_a_new_l0_setting_adds_nodes_and_changes_only_the_answer_downstream() -> None:
    _, base = _plan(_config())
    _, wider = _plan(_config(saes={"k": [6, 12, 24]}))
    assert base["model"].id == wider["model"].id and base["activations"].id == wider["activations"].id
    assert all(wider["saes"][key].id == node.id for key, node in base["saes"].items())
    assert len(wider["saes"]) == len(base["saes"]) + 6  # topk and batchtopk at k=24
    assert base["answer"].id != wider["answer"].id


def test_the_preset_reproduces_synthsaebench_and_the_claim_covers_only_its_settings_at_l0_about_25() -> None:
    _, handles = _plan(_config(preset="synthsaebench-16k", saes={"k": [25], "architectures": ["batchtopk", "relu"]}))
    params = handles["model"].params
    assert (params["num_features"], params["hidden_dim"]) == (16384, 768)
    assert params["hierarchy"]["total_root_nodes"] == 128 and params["correlation"]["rank"] == 25
    matched = [node.params["published"]["settings_match"] for node in handles["evals"].values()]
    assert matched.count(True) == 6  # batchtopk k=25 at both widths x 3 seeds; relu has no k
    assert published_match(params, Cell("topk", 8, 40, None))["settings_match"] is False
    demo = model_params(validate_config({"name": "t"})["synthetic"], 0)
    assert published_match(demo, Cell("topk", 8, 25, None))["settings_match"] is False
    assert SYNTHSAEBENCH_16K["firing"] == {"exponent": 0.5, "max_prob": 0.4, "min_prob": 0.0005}
    assert role("eval", Cell("relu", 4, None, 5.0), 2) == "eval__relu-x4-l1_5__s2"


def test_the_evaluations_and_the_answer_are_ledger_rows_named_by_their_synthetic_model() -> None:
    plan = build_plan(validate_config({"name": "t"}))
    rows = [describe_node(node) for node in plan.nodes.values() if node.stage in RESULT_STAGES]
    ours = [row for row in rows if row["stage"] in ("eval_ground_truth", "ground_truth")]
    assert len(ours) == 28
    assert {row["model"] for row in ours} == {"sae-lens synthetic: 512 true features in d64"}
    assert {row["sae_tokens"] for row in ours if row["stage"] == "eval_ground_truth"} == {500000}
