"""The SAE nodes of the plan per training-data source, and layers per backbone.

``corpus`` (the demo) keeps one SAE per (modality, layer) and its ids whatever the new
keys say; ``task_train`` / ``task_train_allpos`` make one SAE per (dataset, layer) fed by
that dataset's extract node, and every node of dataset D downstream of an SAE uses D's;
``hub_text`` names its dataset in the cache's params. ``layers`` may be a mapping per backbone.
"""

from __future__ import annotations

import copy

import pytest

from sae_difficulty.pipeline.config import layer_config, validate_config
from sae_difficulty.pipeline.study import build_plan, memory_request_mb
from sae_difficulty.pipeline.study_saes import describe_sae
from sae_difficulty.utils.errors import InputError

HOLDOUT = {"probe": {"mode": "holdout"}}
SMALL = {"sae": {"seeds": [0, 1], "expansions": [2]}, "modular": {"enabled": False}, "sae_evals": {"enabled": False},
         "synthetic": {"enabled": False}}  # fmt: skip


def _config(**overrides) -> dict:
    return validate_config(layer_config({"name": "t", **copy.deepcopy(SMALL)}, copy.deepcopy(overrides)))


def _ids(plan, stage: str) -> dict[str, str]:
    return {node.key: node.id for node in plan.nodes.values() if node.stage == stage}


def _one_line_error(config: dict) -> str:
    with pytest.raises(InputError) as error:
        validate_config(config)
    message = str(error.value)
    assert "\n" not in message
    return message


def test_corpus_source_ignores_the_task_and_hub_keys() -> None:
    """The demo's nodes do not move when keys only other sources read change."""
    plain = build_plan(_config())
    spelled = build_plan(_config(llm={"sae_activations": {"source": "corpus", "heldout_fraction": 0.3,
                                                         "hub_text": {"name": "NeelNanda/pile-10k"}}},
                                 tsfm={"sae_activations": {"source": "corpus", "heldout_fraction": 0.3}}))  # fmt: skip
    for stage in ("sae_activations", "sae", "sae_quality", "sae_stability", "codes", "probe", "causal", "synthesis"):
        assert _ids(plain, stage) == _ids(spelled, stage), stage
    acts = plain.nodes[_ids(plain, "sae_activations")["llm/L1/activations"]]
    assert "source" not in acts.params and acts.parents["backbone"].key == "llm/small"


@pytest.mark.parametrize("source, positions", [("task_train", "last"), ("task_train_allpos", "all")])
def test_task_sources_make_one_sae_per_dataset_used_by_that_dataset_only(source: str, positions: str) -> None:
    config = _config(**HOLDOUT, llm={"layers": [1, 0], "sae_activations": {"source": source, "heldout_fraction": 0.2}})
    plan = build_plan(config)
    acts = {key: plan.nodes[i] for key, i in _ids(plan, "sae_activations").items()}
    assert sorted(k for k in acts if k.startswith("llm/")) == [f"llm/{d}/L{layer}/activations"
                                                              for d in ("hellaswag", "squad") for layer in (0, 1)]  # fmt: skip
    for key, node in acts.items():
        if key.startswith("llm/"):
            dataset, layer = key.split("/")[1], int(key.split("/")[2][1:])
            assert node.parents == {"extract": plan.nodes[_ids(plan, "extract")[f"llm/{dataset}/L{layer}/extract"]]}
            assert node.params == {"modality": "llm", "dataset": dataset, "layer": layer, "seed": 0, "source": source,
                                   "positions": positions, "heldout_fraction": 0.2}  # fmt: skip
    assert "tsfm/L1/activations" in acts  # the TSFM keeps its own source (corpus)
    for node in plan.nodes.values():
        if node.stage in ("codes", "causal") and node.key.startswith("llm/"):
            dataset = node.key.split("/")[1]
            sae = node.parents["sae"]
            assert sae.key.startswith(f"llm/{dataset}/L") and sae.parents["activations"].params["dataset"] == dataset
            assert node.params.get("sae_positions") == ("last" if positions == "last" else None)
        if node.stage == "causal" and node.key.startswith("llm/"):
            assert node.parents["activations"] is node.parents["sae"].parents["activations"]
    rows = plan.synthesis.params["sae_rows"]
    assert {(r["modality"], r.get("dataset")) for r in rows} == {("llm", "hellaswag"), ("llm", "squad"), ("tsfm", None)}
    stability = {(r["modality"], r.get("dataset"), r["layer"]) for r in plan.synthesis.params["stability_rows"]}
    assert ("llm", "squad", 0) in stability and ("tsfm", None, 1) in stability
    # the SAE job's memory request sees the (hub) backbone's width through the extract node
    hub = {"backbones": {"small": {"hub": "EleutherAI/pythia-410m"}}}
    task = build_plan(_config(**HOLDOUT, llm={**hub, "sae_activations": {"source": source}}))
    corpus = build_plan(_config(llm=hub))
    task_sae, corpus_sae = (p.nodes[_ids(p, "sae")[k]] for p, k in ((task, "llm/squad/L1/topk-x2-s0"), (corpus, "llm/L1/topk-x2-s0")))
    assert memory_request_mb(task_sae, 1000) == memory_request_mb(corpus_sae, 1000) > 1000 + 60


def test_describe_sae_reads_keys_with_and_without_a_dataset() -> None:
    plan = build_plan(_config(**HOLDOUT, tsfm={"sae_activations": {"source": "task_train"}}))
    keyed = {node.key: node for node in plan.nodes.values() if node.stage == "sae"}
    assert describe_sae(keyed["tsfm/etth1/L1/topk-x2-s1"]) == {"modality": "tsfm", "dataset": "etth1", "layer": 1,
                                                               "architecture": "topk", "expansion": 2, "seed": 1}  # fmt: skip
    assert describe_sae(keyed["llm/L1/topk-x2-s0"]) == {"modality": "llm", "layer": 1, "architecture": "topk",
                                                        "expansion": 2, "seed": 0}  # fmt: skip


@pytest.mark.parametrize("modality, source", [("llm", "task_train"), ("llm", "task_train_allpos"), ("tsfm", "task_train")])
def test_task_sources_need_holdout_mode(modality: str, source: str) -> None:
    message = _one_line_error({"name": "t", modality: {"sae_activations": {"source": source}}})
    assert f"'{modality}.sae_activations.source'" in message and source in message and "probe.mode holdout" in message
    assert "got probe.mode 'cv'" in message


def test_hub_text_names_its_dataset() -> None:
    message = _one_line_error({"name": "t", "llm": {"sae_activations": {"source": "hub_text"}}})
    assert "'llm.sae_activations.hub_text.name'" in message
    hub = {"name": "NeelNanda/pile-10k", "split": "train", "text_column": "text"}
    plan = build_plan(_config(llm={"sae_activations": {"source": "hub_text", "tokens": 4096, "hub_text": hub}}))
    acts = plan.nodes[_ids(plan, "sae_activations")["llm/L1/activations"]]
    assert acts.params["source"] == "hub_text" and acts.params["hub_text"] == {**hub, "config": None}
    assert acts.params["tokens"] == 4096 and "corpus" not in acts.params and "heldout_fraction" not in acts.params
    with pytest.raises(InputError, match="expected one of"):
        validate_config({"name": "t", "tsfm": {"sae_activations": {"source": "hub_text"}}})  # no hub text for series


def test_layers_per_backbone_drive_extraction_with_the_primary_list() -> None:
    as_list = build_plan(_config(llm={"layers": [1, 0]}))
    as_mapping = build_plan(_config(llm={"layers": {"small": [1, 0], "large": [3, 2]}}))
    for stage in ("extract", "sae", "codes", "probe", "causal"):
        assert _ids(as_list, stage) == _ids(as_mapping, stage), stage
    assert as_mapping.synthesis.params["primary"]["layers"]["llm"] == 1
    large = build_plan(_config(llm={"primary_backbone": "large", "layers": {"small": [1], "large": [3, 2]}}))
    assert sorted(k for k in _ids(large, "extract") if k.startswith("llm/hellaswag")) == [
        "llm/hellaswag/L2/extract", "llm/hellaswag/L3/extract"]
    assert large.nodes[_ids(large, "causal")["llm/hellaswag/causal"]].params["layer"] == 3


@pytest.mark.parametrize("layers, fragments", [
    ({"small": [1], "large": [4]}, ["'llm.layers.large'", "layer 4 does not exist in the large demo backbone", "n_layers = 4",
                                    "layers 0..3"]),
    ({"small": [2], "large": [0]}, ["'llm.layers.small'", "layer 2 does not exist in the small demo backbone", "layers 0..1"]),
    ({"large": [0]}, ["'llm.layers'", "no list for the primary backbone 'small'"]),
    ({"small": [0, 0]}, ["'llm.layers.small'", "0 appears 2 times"]),
])  # fmt: skip
def test_each_backbone_list_is_checked_against_its_depth(layers: dict, fragments: list[str]) -> None:
    message = _one_line_error({"name": "t", "llm": {"layers": layers}})
    for fragment in fragments:
        assert fragment in message, message


def test_a_hub_backbone_leaves_its_layers_to_the_job() -> None:
    config = validate_config({"name": "t", "llm": {"backbones": {"small": {"hub": "EleutherAI/pythia-410m"},
                                                                 "large": {"hub": "EleutherAI/pythia-2.8b"}},
                                                   "layers": {"small": [12, 18], "large": [16, 28]}}})  # fmt: skip
    assert config["llm"]["layers"] == {"small": [12, 18], "large": [16, 28]}


DISENTANGLE = {"llm": {"sae_activations": {"source": "task_train"}, "causal": {"disentangle": True}}}


@pytest.mark.parametrize("source", ["corpus", "task_train_allpos", "hub_text"])
def test_the_disentanglement_needs_the_boundary_sae(source: str) -> None:
    """llm.causal.disentangle sets an all-position SAE beside the boundary SAE (source task_train):
    with any other source there is no boundary SAE to set it beside."""
    llm = {"sae_activations": {"source": source, "hub_text": {"name": "NeelNanda/pile-10k"}}, "causal": {"disentangle": True}}
    message = _one_line_error({"name": "t", **HOLDOUT, "llm": llm})
    assert "'llm.causal.disentangle'" in message and "task_train" in message and f"got {source!r}" in message


def test_the_disentanglement_trains_its_saes() -> None:
    pretrained = {"pretrained": {"llm": {"release": "some-release", "sae_id": "blocks.1.hook_resid_post"}}}
    message = _one_line_error({"name": "t", **HOLDOUT, **DISENTANGLE, "sae": pretrained})
    assert "'llm.causal.disentangle'" in message and "sae.pretrained.llm some-release/blocks.1.hook_resid_post" in message


def test_the_disentanglement_only_adds_nodes() -> None:
    """Turning llm.causal.disentangle on adds, per LM dataset, the all-position SAE's cache, SAE, codes,
    probe and causal node (and a new synthesis): every other node keeps its id, so the flag itself is
    in no node's params. Off (the default, every config but config/paper.yaml) it adds nothing."""
    off = build_plan(_config(**HOLDOUT, llm={"sae_activations": {"source": "task_train"}}))
    on = build_plan(_config(**HOLDOUT, **DISENTANGLE))
    assert not [node for node in off.nodes.values() if "allpos" in node.key]
    assert "disentangle_rows" not in off.synthesis.params
    added = {node.key: node for node in on.nodes.values() if node.id not in off.nodes}
    assert set(added) == {"synthesis"} | {
        f"llm/{d}/{suffix}" for d in ("hellaswag", "squad")
        for suffix in ("L1/allpos/activations", "L1/allpos/topk-x2-s0", "L1/allpos/topk-x2/codes",
                       "L1/allpos/topk-x2/last/probe", "causal-allpos-sae")
    }  # fmt: skip
    assert {node.key for node in off.nodes.values() if node.id not in on.nodes} == {"synthesis"}
    for dataset in ("hellaswag", "squad"):
        allpos = added[f"llm/{dataset}/causal-allpos-sae"]
        assert allpos.parents["sae"] is added[f"llm/{dataset}/L1/allpos/topk-x2-s0"]
        assert on.key(f"llm/{dataset}/causal").parents["sae"].key == f"llm/{dataset}/L1/topk-x2-s0"
