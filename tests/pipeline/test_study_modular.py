"""add_modular_nodes: the modular study's nodes, their parents and what changes which id."""

from __future__ import annotations

import copy

import pytest

from sae_difficulty.pipeline.config import validate_config
from sae_difficulty.pipeline.plan import Plan
from sae_difficulty.pipeline.study import STAGE_VERSIONS
from sae_difficulty.pipeline.study_modular import (
    MODULAR_STAGE_VERSIONS,
    add_modular_nodes,
)

SAE_KEYS = {"architecture", "expansion", "seed", "k", "l1_coefficient", "lr", "training_tokens", "batch_size"}


def _config(**modular) -> dict:
    return validate_config({"name": "t", "modular": {"p": 23, "seeds": [0, 1, 2], **modular}})


def _plan(config: dict) -> tuple[Plan, dict]:
    plan = Plan({**STAGE_VERSIONS, **MODULAR_STAGE_VERSIONS})
    return plan, add_modular_nodes(plan, config)


def test_nodes_and_parents() -> None:
    plan, handles = _plan(_config())
    assert [n.stage for n in plan.nodes.values()].count("sae") == 6  # topk + relu, three seeds
    stability = handles["stability"]
    assert set(stability.parents) == {"backbone", "activations", "topk_s0", "topk_s1", "topk_s2", "relu_s0", "relu_s1", "relu_s2"}
    assert handles["activations"].parents == {"backbone": handles["backbone"]}
    for (architecture, seed), node in handles["saes"].items():
        assert node.stage == "sae" and set(node.params) == SAE_KEYS and node.parents == {"activations": handles["activations"]}
        assert node.params["architecture"] == architecture and node.params["seed"] == seed
        assert (node.params["k"] is None) == (architecture == "relu") and (node.params["l1_coefficient"] is None) != (architecture == "relu")
        assert stability.parents[f"{architecture}_s{seed}"] is node
    assert handles["backbone"].params["p"] == 23 and handles["report"]["markdown"] == "results/modular/stability.md"


def test_a_stability_parameter_reruns_only_the_stability_node() -> None:
    base, _ = _plan(_config())
    changed, _ = _plan(_config(n_random=3))
    assert set(base.nodes) ^ set(changed.nodes) == {base.stage("modular_stability")[0].id, changed.stage("modular_stability")[0].id}
    relu, _ = _plan(_config(l1_coefficient=0.1))
    rerun = {base.nodes[node_id].key for node_id in set(base.nodes) - set(relu.nodes)}
    assert rerun == {"modular/L1/relu-x8-s0", "modular/L1/relu-x8-s1", "modular/L1/relu-x8-s2", "modular/L1/stability"}


def test_backbone_parameters_change_everything_and_disabled_adds_nothing() -> None:
    base, _ = _plan(_config())
    trained_longer, _ = _plan(_config(train_steps=100))
    assert not set(base.nodes) & set(trained_longer.nodes)
    config = _config(enabled=False)
    plan, handles = _plan(copy.deepcopy(config))
    assert handles == {} and not plan.nodes


def test_schema_rejects_bad_modular_values() -> None:
    from sae_difficulty.utils.errors import InputError

    with pytest.raises(InputError, match="fourier_directions"):
        _config(fourier_directions="pca")


def test_backbone_spec_defaults_mirror_the_schema() -> None:
    from sae_difficulty.modalities.modular.model import GrokkingSpec
    from sae_difficulty.pipeline.study_modular import BACKBONE_KEYS

    schema_defaults = _config()["modular"]
    spec_defaults = GrokkingSpec().to_dict()
    assert {key: spec_defaults[key] for key in BACKBONE_KEYS if key != "p"} == {
        key: schema_defaults[key] for key in BACKBONE_KEYS if key != "p"
    }
