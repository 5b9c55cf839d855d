"""The generated manuscript: its claims are the synthesis' verdicts, its numbers the synthesis'
own with their store nodes, its method the run's config and plan, and it compiles for a
config named with LaTeX's special characters."""

from __future__ import annotations

import hashlib
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from conftest import REPO
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from sae_difficulty.pipeline.config import load_config
from sae_difficulty.pipeline.study import backbone_parameters, build_plan
from sae_difficulty.reports import manuscript, run_facts
from sae_difficulty.reports.latex import count
from sae_difficulty.reports.manuscript_results import FIGURE_KINDS, EvalHeadline, Panel
from sae_difficulty.utils.errors import InputError
from sae_difficulty.utils.io import write_json

SPECIAL_NAME = "my_run 100% & more"
ESCAPED_NAME = r"my\_run 100\% \& more"
RUNGS = {"P1": "P1 cheap AUROC", "P2": "P2 cheap+raw AUROC", "P3": "P3 cheap+SAE AUROC", "P4": "P4 raw-only AUROC",
         "P5": "P5 SAE-only AUROC"}  # fmt: skip
# Planted per column: P2 and P3 AUROCs, Δ's 95% CI, the synthesis' verdict word, causal effect, deployable.
PLANTED = {
    "llm_hellaswag": (0.701, 0.812, (0.072, 0.150), "SAE adds signal", True, True),
    "llm_squad": (0.655, 0.643, (-0.090, 0.066), "inconclusive", False, False),
    "tsfm_etth1": (0.734, 0.737, (-0.011, 0.017), "equivalent within ±0.02", False, True),
}
STAGES = ("probe", "causal", "selective")


def node_id(column: str, stage: str) -> str:
    return hashlib.sha256(f"{column}/{stage}".encode()).hexdigest()[:12]


def synthetic_synthesis() -> dict:
    main, verdicts = [], {}
    for column, (p2, p3, ci, verdict, causal, deployable) in PLANTED.items():
        probe = node_id(column, "probe")
        aurocs = {"P1": 0.6, "P2": p2, "P3": p3, "P4": p2 - 0.01, "P5": p3 - 0.02}
        for rung, label in RUNGS.items():
            value = aurocs[rung]
            main.append({"row": label, "column": column, "text": f"{value:.3f} [{value - 0.05:.3f}, {value + 0.05:.3f}]",
                         "value": value, "ci_low": value - 0.05, "ci_high": value + 0.05, "p": None, "stage": "probe",
                         "node_id": probe, "section": "main"})  # fmt: skip
        delta = p3 - p2
        main.append({"row": "Δ SAE over raw (P3−P2)", "column": column, "text": f"{delta:+.3f} [{ci[0]:+.3f}, {ci[1]:+.3f}]",
                     "value": delta, "ci_low": ci[0], "ci_high": ci[1], "p": 0.01, "stage": "probe", "node_id": probe,
                     "section": "main"})  # fmt: skip
        main.append({"row": "examples (difficult)", "column": column, "text": "300 (90)", "value": 300, "ci_low": None,
                     "ci_high": None, "p": None, "stage": "probe", "node_id": probe, "section": "main"})  # fmt: skip
        main.append({"row": "causal: all prompt/context positions, k/n (random sets: median, 95th pct)", "column": column,
                     "text": "2/5 (random sets: 0.0, 1.0; p 0.05, 20 sets)", "value": 2, "ci_low": None, "ci_high": None,
                     "p": 0.05, "stage": "causal", "node_id": node_id(column, "causal"), "section": "main"})  # fmt: skip
        main.append({"row": "selective: % of oracle captured (P3)", "column": column, "text": "31.5", "value": 31.5,
                     "ci_low": None, "ci_high": None, "p": None, "stage": "selective",
                     "node_id": node_id(column, "selective"), "section": "main"})  # fmt: skip
        verdicts[column] = {"delta_verdict": verdict, "equivalence_margin": 0.02, "delta": delta, "ci": list(ci),
                            "ci90": [ci[0] + 0.01, ci[1] - 0.01], "causal_effect": causal, "deployable_selective": deployable,
                            "k_all": 2, "n_features": 5, "pct_oracle": 31.5, "p3_auroc": p3, "p3_ci_low": p3 - 0.05}  # fmt: skip
    sae = [{"modality": "llm", "layer": 1, "sae": "topk x2", "seed": 0, "explained_variance": 0.81, "l0": 8.0,
            "dead_fraction": None, "spliced_delta": 0.12, "fraction_recovered": 0.7, "loss_unit": "nats",
            "pwmcc": 0.55, "pwmcc_random_isotropic": 0.2, "pwmcc_random_matched": 0.4, "stable_beyond_matched": "yes",
            "quality_node": "5a5a5a5a5a5a", "stability_node": "5b5b5b5b5b5b"}]  # fmt: skip
    return {"config": SPECIAL_NAME, "code_version": "sae-difficulty 0.1 (stage versions abcd1234)", "seed": 0,
            "verdicts": verdicts, "main": main, "sae": sae, "sweep": []}  # fmt: skip


@pytest.fixture
def run(tmp_path, monkeypatch):
    """A plan and facts of config/ci.yaml renamed with LaTeX specials; one tasks node with its split counts."""
    monkeypatch.chdir(REPO)
    config = load_config(REPO / "config" / "ci.yaml")
    config["name"] = SPECIAL_NAME
    plan = build_plan(config)
    store = tmp_path / "store"
    tasks = plan.key("llm/hellaswag/tasks")
    write_json(store / "tasks" / tasks.id / "tasks.json", {"n_examples": 100, "n_train": 70, "n_test": 30, "source": "demo"})
    return plan, config, run_facts.collect(plan, config, store)


def panels(directory: Path) -> dict[str, list[Panel]]:
    """One small PNG per figure kind and column, as the manuscript view copies them."""
    out: dict[str, list[Panel]] = {}
    (directory / "generated" / "figures").mkdir(parents=True, exist_ok=True)
    for kind, stage, _ in FIGURE_KINDS:
        for column in PLANTED:
            figure = Figure(figsize=(2, 1.5))
            FigureCanvasAgg(figure)
            figure.subplots().plot(np.arange(5), np.arange(5) ** 2)
            name = f"generated/figures/{column.replace('_', '-')}-{kind.replace('_', '-')}.png"
            figure.savefig(directory / name, dpi=40)
            out.setdefault(kind, []).append(Panel(column, name, node_id(column, stage)))
    return out


EVALS = [EvalHeadline("eval_sparse_probing", "Sparse probing (top-k SAE latents vs top-k residual dimensions)",
                      "7e7e7e7e7e7e", "AUROC gap (SAE − residual) at k=8", -0.031, -0.06, float("nan"), 0.0, "n/a_50%")]  # fmt: skip


def test_title_and_abstract_claim_the_synthesis_verdicts(run, tmp_path):
    _, _, facts = run
    files = manuscript.render(synthetic_synthesis(), facts, {})
    abstract = files["abstract.tex"]
    for word, count_ in (("SAE adds signal", 1), ("SAE worse", 0), ("equivalent within ±0.02", 1), ("inconclusive", 1)):
        assert rf"\emph{{{word}}} in {count_}/3" in abstract
    for p2, p3, *_ in PLANTED.values():
        assert f"{p3:.3f}" in abstract and f"{p2:.3f}" in abstract
    assert "causal effect beyond random sets in 1/3" in abstract and "selective predictor exists in 2/3" in abstract
    # Mixed verdicts: the title states the split, not a claim.
    assert "1/3 SAE adds signal" in files["title.tex"] and ESCAPED_NAME in files["title.tex"]


def test_a_unanimous_verdict_is_the_title_claim(run):
    _, _, facts = run
    synthesis = synthetic_synthesis()
    for verdict in synthesis["verdicts"].values():
        verdict["delta_verdict"] = "SAE worse"
    assert "carry less self-difficulty signal than raw activations" in manuscript.render(synthesis, facts, {})["title.tex"]


def test_every_marked_number_names_its_store_node(run):
    _, _, facts = run
    files = manuscript.render(synthetic_synthesis(), facts, {})
    body = "".join(text for name, text in files.items() if name != "provenance.tex")
    marks = {int(n) for n in re.findall(r"\\nodesource\{(\d+)\}", body)}
    listed = {int(n) for n in re.findall(r"\\label\{node:(\d+)\}", files["provenance.tex"])}
    assert marks and marks == listed
    for column in PLANTED:
        for stage in STAGES:
            assert node_id(column, stage) in files["provenance.tex"]
    # Tables name their nodes in their notes.
    assert all(node_id(column, "probe") in files["main_table.tex"] for column in PLANTED)
    assert "5a5a5a5a5a5a" in files["sae_table.tex"] and "5b5b5b5b5b5b" in files["sae_table.tex"]


def test_method_is_the_config_and_plan_that_ran(run):
    plan, config, facts = run
    method = manuscript.render(synthetic_synthesis(), facts, {})["method.tex"]
    for size in ("small", "large"):
        backbone = plan.key(f"llm/{size}")
        assert count(backbone_parameters(backbone.params)) in method
    assert f"$k = {config['sae']['k']}$" in method
    assert f"{config['probe']['n_perm']} permutations" in method
    assert "70 train / 30 test" in method  # read from the tasks node
    assert f"{config['causal']['n_random_sets']} random sets" in method
    assert r"\cite{delong1988comparing}" in method and r"\cite{schuirmann1987comparison}" in method


def test_limitations_name_what_was_not_run(run):
    _, _, facts = run
    files = manuscript.render(synthetic_synthesis(), facts, {})
    limitations = files["limitations.tex"]
    assert "demo models trained inside the workflow" in limitations
    assert "the SAE evaluation suite" in limitations  # no evaluation headlines given
    assert "$m = 0.020$" in limitations
    with_evals = manuscript.render(synthetic_synthesis(), facts, {}, EVALS)
    assert "the SAE evaluation suite" not in with_evals["limitations.tex"]
    assert "evals_table.tex" in with_evals and "7e7e7e7e7e7e" in with_evals["evals_table.tex"]


def test_special_characters_appear_only_escaped(run):
    _, _, facts = run
    files = manuscript.render(synthetic_synthesis(), facts, {}, EVALS)
    text = "".join(files.values())
    assert SPECIAL_NAME not in text and ESCAPED_NAME in text
    assert r"n/a\_50\%" in files["evals_table.tex"] and "NaN" in files["evals_table.tex"]


def test_a_synthesis_without_its_tables_is_refused(run):
    _, _, facts = run
    with pytest.raises(InputError, match="main"):
        manuscript.render({"config": "x", "verdicts": {}, "sae": []}, facts, {})


@pytest.mark.skipif(shutil.which("latexmk") is None, reason="no latexmk (apt-get install latexmk texlive-latex-extra)")
def test_the_manuscript_of_a_special_config_name_compiles(run, tmp_path):
    _, _, facts = run
    paper = tmp_path / "paper"
    paper.mkdir()
    for name in ("main.tex", "references.bib"):
        shutil.copyfile(REPO / "paper" / name, paper / name)
    files = manuscript.render(synthetic_synthesis(), facts, panels(paper), EVALS)
    for name, text in files.items():
        (paper / "generated" / name).write_text(text)
    result = subprocess.run(["latexmk", "-pdf", "-interaction=nonstopmode", "-halt-on-error", "main.tex"], cwd=paper,
                            check=False, capture_output=True, text=True, timeout=300)  # fmt: skip
    log = (paper / "main.log").read_text(errors="replace")
    assert result.returncode == 0, log[-3000:]
    assert not re.search(r"(Reference|Citation) `[^']*' on page \d+ undefined", log)
    assert (paper / "main.pdf").stat().st_size > 0
