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


def dataset_matched(found: list) -> list:
    """The nodes of the boundary (dataset-matched) SAE families, without the 2x2 disentanglement's
    all-position SAE and its nodes (``/allpos/`` keys, test_the_2x2_disentanglement_...)."""
    return [n for n in found if "/allpos/" not in n.key]


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
    caches = dataset_matched(nodes(plan, "sae_activations", f"{modality}/"))
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
    for sae in dataset_matched(nodes(plan, "sae", f"{modality}/")):
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
            poolings = [p.params["pooling"] for p in dataset_matched(probes)
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


def test_the_2x2_disentanglement_sets_an_all_position_sae_beside_the_boundary_sae(
    plan,
) -> None:
    """llm.causal.disentangle (the original's 2x2: boundary / all-position SAE x boundary /
    all-position patch): per LM dataset, on the headline layer, a cache of every prompt position of
    the training split cut from the same extract node, one SAE of the boundary SAE's recipe on it,
    its codes and headline probe, and a second causal node that differs from the headline one only
    in that SAE (and drops the boundary-row restriction); the synthesis reads both."""
    layer = PROTOCOL["llm"]["layers"][0]
    rows = {row["column"]: row for row in plan.synthesis.params["disentangle_rows"]}
    assert sorted(rows) == [f"llm_{d}" for d in sorted(PROTOCOL["llm"]["datasets"])]
    assert not [n for n in nodes(plan, "causal", "tsfm/") if "allpos" in n.key]
    for dataset in PROTOCOL["llm"]["datasets"]:
        boundary = plan.key(f"llm/{dataset}/causal")
        allpos = plan.key(f"llm/{dataset}/causal-allpos-sae")
        assert (
            plan.synthesis.parents[rows[f"llm_{dataset}"]["boundary_sae"]] is boundary
        )
        assert plan.synthesis.parents[rows[f"llm_{dataset}"]["allpos_sae"]] is allpos
        # the headline causal node patches with the boundary SAE, trained on boundary rows
        boundary_cache = boundary.parents["sae"].parents["activations"]
        assert (
            boundary_cache.params["source"],
            boundary_cache.params["positions"],
        ) == ("task_train", "last")
        assert boundary.params["sae_positions"] == "last"
        # the second one with an SAE of the same recipe on every prompt position of the same extract node
        sae = allpos.parents["sae"]
        cache = sae.parents["activations"]
        assert (cache.params["source"], cache.params["positions"]) == (
            "task_train_allpos",
            "all",
        )
        assert cache.parents["extract"] is boundary_cache.parents["extract"]
        assert (
            cache.parents["extract"].params["layer"] == layer
            and allpos.parents["activations"] is cache
        )
        assert (
            sae.params == boundary.parents["sae"].params
            and sae is not boundary.parents["sae"]
        )
        # its top features come from its own probe: the headline probe's params, on its own codes
        probe = allpos.parents["probe"]
        assert (
            probe.params == boundary.parents["probe"].params
            and probe.params["pooling"] == "concat"
        )
        assert (
            probe.parents["codes"].parents["sae"] is sae
            and "sae_positions" not in probe.parents["codes"].params
        )
        assert {
            k: v for k, v in boundary.params.items() if k != "sae_positions"
        } == allpos.params
        assert (
            allpos.parents["backbone"] is boundary.parents["backbone"]
            and allpos.parents["tasks"] is boundary.parents["tasks"]
        )
        # outside the headline columns, the sweep rows and the SAE table
        assert probe not in plan.sweep_probes and allpos not in [
            c.causal for c in plan.columns
        ]
        assert not [
            n for n in plan.sae_quality + plan.sae_stability if "allpos" in n.key
        ]


def test_the_tsfm_probes_choose_C_by_the_originals_forward_time_series_split(
    plan, tmp_path
) -> None:
    """probe.inner_cv forward (the original's TimeSeriesSplit) reaches the TSFM probes only: the LM's
    examples are independent, so its probes keep their params and ids; against inner_cv blocked, the
    nodes that change are the TSFM probes and what depends on them."""
    tsfm_probes = nodes(plan, "probe", "tsfm/")
    assert tsfm_probes and all(p.params["inner_cv"] == "forward" for p in tsfm_probes)
    assert not [p for p in nodes(plan, "probe", "llm/") if "inner_cv" in p.params]
    overlay = tmp_path / "blocked.yaml"
    overlay.write_text("probe: {inner_cv: blocked}\n")
    blocked = build_plan(
        resolve_config(
            [REPO / "config" / "paper.yaml", overlay], base=REPO / "config" / "config.yaml"
        )
    )
    ids = {n.key: n.id for n in blocked.nodes.values()}
    changed = {n.key for n in plan.nodes.values() if ids[n.key] != n.id}
    probe_keys = {p.key for p in tsfm_probes}
    depends: dict[str, bool] = {}

    def on_a_tsfm_probe(node) -> bool:
        if node.key not in depends:
            depends[node.key] = node.key in probe_keys or any(
                on_a_tsfm_probe(parent) for parent in node.parents.values()
            )
        return depends[node.key]

    assert changed == {n.key for n in plan.nodes.values() if on_a_tsfm_probe(n)}
    assert probe_keys <= changed


@pytest.mark.parametrize("overlays", [[], ["ci.yaml"]], ids=["demo", "ci"])
def test_the_default_blocked_inner_cv_leaves_the_demo_and_ci_probe_ids_as_they_were(
    overlays: list[str],
) -> None:
    """The default (blocked) stays out of the probe params, so adding probe.inner_cv changed no id of
    the demo's or CI's nodes (their stores stay valid)."""
    config = resolve_config(
        [REPO / "config" / o for o in overlays], base=REPO / "config" / "config.yaml"
    )
    assert config["probe"]["inner_cv"] == "blocked"
    probes = [n for n in build_plan(config).nodes.values() if n.stage == "probe"]
    assert probes and not [p for p in probes if "inner_cv" in p.params]
