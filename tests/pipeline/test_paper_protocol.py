"""config/paper.yaml plans the original study's protocol, in both legs.

The config is resolved the way Snakemake builds it (config/config.yaml, then config/paper.yaml
painted over it), and the plan's nodes are checked against the protocol table of the issue:
backbones, layers, k, latent counts (expansion x the hub model's width), the SAE's training
data, poolings, split sizes, filters, labels, bootstrap and permutation counts. A key the demo
left behind in the layering would show here as a wrong node parameter.
"""

from __future__ import annotations

import pytest
from conftest import REPO

from sae_difficulty.pipeline.config import resolve_config
from sae_difficulty.pipeline.study import HUB_WIDTH, build_plan

PROTOCOL = {
    "llm": {"small": "EleutherAI/pythia-410m", "large": "EleutherAI/pythia-2.8b", "layers": [12, 18],
            "datasets": {"hellaswag": "Rowan/hellaswag", "squad": "rajpurkar/squad"}},
    "tsfm": {"small": "amazon/chronos-t5-small", "large": "amazon/chronos-t5-base", "layers": [3, 5],
             "datasets": {"etth1": None}},
}  # fmt: skip
LATENTS, K = 4096, 32
POOLINGS = ["concat", "mean", "max", "last"]


@pytest.fixture(scope="module")
def plan():
    # config/config.yaml, then config/paper.yaml over it: what `snakemake --configfile config/paper.yaml` runs
    return build_plan(
        resolve_config(
            [REPO / "config" / "paper.yaml"], base=REPO / "config" / "config.yaml"
        )
    )


def nodes(plan, stage: str, prefix: str = "") -> list:
    return [
        n for n in plan.nodes.values() if n.stage == stage and n.key.startswith(prefix)
    ]


@pytest.mark.parametrize("modality", ["llm", "tsfm"])
def test_backbones_layers_k_and_latent_counts(plan, modality: str) -> None:
    protocol = PROTOCOL[modality]
    hubs = {
        n.params["size"]: n.params["hub"]
        for n in nodes(plan, "backbone", f"{modality}/")
    }
    assert hubs == {"small": protocol["small"], "large": protocol["large"]}
    assert (
        sorted({n.params["layer"] for n in nodes(plan, "extract", f"{modality}/")})
        == protocol["layers"]
    )
    assert (
        plan.synthesis.params["primary"]["layers"][modality] == protocol["layers"][0]
    )  # mid layer is the headline
    saes = [n for n in nodes(plan, "sae", f"{modality}/") if "half" not in n.key]
    assert saes and {n.params["architecture"] for n in saes} == {"topk"}
    assert {n.params["k"] for n in saes} == {K}
    width = HUB_WIDTH[protocol["small"]]
    assert {n.params["expansion"] * width for n in saes} == {
        LATENTS
    }  # 4 x 1024 and 8 x 512
    # each causal run ablates 5 features of the headline (layer, SAE) of the probed backbone
    for causal in nodes(plan, "causal", f"{modality}/"):
        assert (
            causal.params["n_features"] == 5
            and causal.params["layer"] == protocol["layers"][0]
        )
        assert causal.parents["backbone"].params["hub"] == protocol["small"]


@pytest.mark.parametrize("modality", ["llm", "tsfm"])
def test_the_saes_are_trained_on_each_datasets_training_split(
    plan, modality: str
) -> None:
    caches = nodes(plan, "sae_activations", f"{modality}/")
    datasets = PROTOCOL[modality]["datasets"]
    assert len(caches) == len(datasets) * len(
        PROTOCOL[modality]["layers"]
    )  # one SAE family per dataset x layer
    for cache in caches:
        assert cache.params["source"] == "task_train"
        extract = cache.parents[
            "extract"
        ]  # cut from the dataset's own extracted activations
        assert (
            extract.params["layer"] == cache.params["layer"]
            and cache.params["dataset"] in extract.key
        )
    for sae in nodes(plan, "sae", f"{modality}/"):
        assert sae.parents["activations"].params["source"] == "task_train"
    for codes in nodes(plan, "codes", f"{modality}/"):
        dataset = codes.key.split("/")[1]
        assert (
            codes.parents["sae"].parents["activations"].params["dataset"] == dataset
        )  # dataset-matched


@pytest.mark.parametrize("modality", ["llm", "tsfm"])
def test_poolings_labels_resampling_and_filters_of_every_probe(
    plan, modality: str
) -> None:
    probes = nodes(plan, "probe", f"{modality}/")
    for dataset in PROTOCOL[modality]["datasets"]:
        for layer in PROTOCOL[modality]["layers"]:
            poolings = [p.params["pooling"] for p in probes
                        if p.key.split("/")[1:3] == [dataset, f"L{layer}"] and p.params["labels"]["scope"] == "dataset"]  # fmt: skip
            assert poolings == POOLINGS
    for probe in probes:
        params = probe.params
        assert (
            params["mode"],
            params["penalty"],
            params["n_boot"],
            params["n_perm"],
        ) == ("holdout", "l1", 2000, 10000)
        assert params["labels"]["quantile"] == 0.75
        filters = params.get("filters")
        if modality == "llm":
            assert filters == {
                "near_duplicate_cosine": 0.7,
                "contamination_perplexity": 1.5,
            }
        else:
            assert filters is None
    columns = [c for c in plan.columns if c.modality == modality]
    assert {c.dataset for c in columns} == set(PROTOCOL[modality]["datasets"])
    for column in (
        columns
    ):  # the headline: concat pooling, the original's whole-dataset label threshold
        assert (
            column.probe.params["pooling"] == "concat"
            and column.probe.params["labels"]["scope"] == "dataset"
        )
    # the project's leakage-free threshold beside it, as a row of the synthesis's robustness table
    rows = [
        r
        for r in plan.synthesis.params["sweep_rows"]
        if r["column"].startswith(f"{modality}_")
    ]
    robustness = [r for r in rows if r["label_scope"] == "train"]
    assert len(robustness) == len(columns)
    assert {(r["layer"], r["pooling"]) for r in robustness} == {
        (PROTOCOL[modality]["layers"][0], "concat")
    }


def test_lm_split_sizes_labels_and_cascade_costs(plan) -> None:
    for tasks in nodes(plan, "tasks", "llm/"):
        n, test = tasks.params["n_examples"], tasks.params["test_fraction"]
        assert (
            tasks.params["hub"] == PROTOCOL["llm"]["datasets"][tasks.params["dataset"]]
        )
        assert (n - round(test * n), round(test * n)) == (3500, 1500)
    for evaluate in nodes(plan, "evaluate", "llm/"):
        assert (
            evaluate.params["squad_error"] == "gold_answer_perplexity"
        )  # HellaSwag stays "incorrect"
    for selective in nodes(plan, "selective"):
        cascade = selective.params["cascade"]
        assert cascade["cost_expensive"] / cascade["cost_cheap"] == 5
        assert (
            selective.parents["expensive"].parents["backbone"].params["size"] == "large"
        )


def test_tsfm_windows_split_purge_and_sampling(plan, tmp_path) -> None:
    from sae_difficulty.modalities.tsfm.tasks import build_tasks

    (tasks,) = nodes(plan, "tasks", "tsfm/")
    assert (
        tasks.params["context_length"],
        tasks.params["horizon"],
        tasks.params["target"],
    ) == (512, 24, "OT")
    params = {
        k: (str(REPO / v) if k == "path" else v)
        for k, v in tasks.params.items()
        if k not in ("modality", "dataset", "seed")
    }
    summary = build_tasks("etth1", params, tmp_path, seed=0)
    assert (
        650 <= summary["n_train"] + summary["n_test"] <= 750
    )  # about 700 windows, as the original
    assert (
        summary["overlap_windows"] * tasks.params["stride"] >= 512 + 24
    )  # the purge gap (probe.purge_gap null) spans context + horizon
    for probe in nodes(plan, "probe", "tsfm/"):
        assert probe.params["purge_gap"] is None and probe.params["mode"] == "holdout"
    for evaluate in nodes(plan, "evaluate", "tsfm/"):
        assert evaluate.params["num_samples"] == 100
    (causal,) = nodes(plan, "causal", "tsfm/")
    assert causal.params["crn"] is True
