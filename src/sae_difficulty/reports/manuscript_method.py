"""The manuscript's method section, written from the run's facts (:mod:`~sae_difficulty.reports.run_facts`).

Every setting named here is one the nodes were built with (hashed into their ids or read
from them), so the method cannot drift from what ran. Each model and data set carries the
store node it came from.
"""

from __future__ import annotations

from typing import Any

from sae_difficulty.reports.latex import Sources, count, escape, number, texttt

MODEL_FAMILY = {"llm": ("a Pythia-architecture (GPT-NeoX) language model", "biderman2023pythia"),
                "tsfm": ("a Chronos-T5 time-series foundation model", "ansari2024chronos")}  # fmt: skip
DATASET_CITATIONS = {"hellaswag": "zellers2019hellaswag", "squad": "rajpurkar2016squad", "etth1": "zhou2021informer"}
DATASET_TASKS = {
    "hellaswag": "multiple-choice sentence completion (four endings; error = the chosen ending is wrong)",
    "squad": "extractive question answering (error = the greedy answer does not match a reference answer)",
    "etth1": "probabilistic forecasting of oil temperature (OT) windows (error = CRPS of the sampled forecast)",
}  # fmt: skip


def _backbone(backbone: dict[str, Any], size: str, modality: str, sources: Sources) -> str:
    mark = sources.mark("backbone", backbone["node"])
    if backbone.get("hub"):
        return rf"{size}: {texttt(backbone['hub'])} ($\approx${count(backbone['parameters'])} parameters){mark}"
    width = backbone.get("d_mlp") or backbone.get("d_ff")
    dims = (f"{backbone.get('n_layers')} layers, width {backbone.get('d_model')}, MLP {width}"
            + (f", vocabulary {backbone['vocab_size']}" if backbone.get("vocab_size") else "")
            + (f", {backbone['n_tokens']} value bins" if backbone.get("n_tokens") else "")
            + (f", {backbone['train_steps']} training steps" if backbone.get("train_steps") else ""))  # fmt: skip
    return rf"{size}: a demo model trained inside the workflow ({escape(dims)}; $\approx${count(backbone['parameters'])} parameters){mark}"


def models(facts: dict[str, Any], sources: Sources) -> str:
    paragraphs = []
    for modality, section in facts["modalities"].items():
        family, citation = MODEL_FAMILY.get(modality, (modality, None))
        cite = rf"~\cite{{{citation}}}" if citation else ""
        primary = section["primary_backbone"]
        other = "large" if primary == "small" else "small"
        sizes = "; ".join(_backbone(section["backbones"][size], size, modality, sources) for size in ("small", "large"))
        layers = ", ".join(str(layer) for layer in section["layers"])
        paragraphs.append(
            rf"\paragraph{{{escape(modality.upper())}.}} {escape(family[:1].upper() + family[1:])}{cite}, in two sizes: {sizes}. "
            rf"The {escape(primary)} model is probed, ablated and read by the SAEs (layer{'s' if len(section['layers']) > 1 else ''} "
            rf"{escape(layers)}; the first is the headline layer); the {escape(other)} one is the expensive model of the cascade. "
            r"Activations are read with TransformerLens~\cite{nanda2022transformerlens} hooks (LM) or forward hooks on the encoder (Chronos)."
        )  # fmt: skip
    return "\n\n".join(paragraphs)


def _split(data: dict[str, Any]) -> str:
    parts = [f"{number(data.get('n_examples'))} examples"]
    if data.get("n_train") is not None and data.get("n_test") is not None:
        parts.append(f"{number(data['n_train'])} train / {number(data['n_test'])} test")
    if data.get("cv_folds"):
        parts.append(f"{number(data['cv_folds'])} cross-validation folds")
    return ", ".join(parts)


def data(facts: dict[str, Any], sources: Sources) -> str:
    items = []
    for modality, section in facts["modalities"].items():
        for name, dataset in section["datasets"].items():
            citation = DATASET_CITATIONS.get(name)
            cite = rf"~\cite{{{citation}}}" if citation else ""
            source = (rf"from the hub ({texttt(dataset['hub'])})" if dataset.get("hub")
                      else "demo records generated in the dataset's own schema" if dataset.get("source") == "demo"
                      else f"from {texttt(dataset.get('source'))}")  # fmt: skip
            windows = ""
            if "horizon" in dataset:
                windows = (f"; windows of {number(dataset.get('context_length'))} steps of context and a "
                           f"{number(dataset.get('horizon'))}-step horizon every {number(dataset.get('stride'))} steps, "
                           "time-ordered")  # fmt: skip
            dropped = ""
            if dataset.get("dropped"):
                dropped = "; filters dropped " + ", ".join(
                    f"{number(n)} ({escape(reason.replace('_', ' '))})" for reason, n in sorted(dataset["dropped"].items()))
            items.append(
                rf"\item \textbf{{{escape(name)}}}{cite} ({escape(modality)}): {escape(DATASET_TASKS.get(name, 'task'))}; "
                rf"{source}; {_split(dataset)}{windows}{dropped}.{sources.mark('tasks', dataset['node'])}"
            )  # fmt: skip
    return "\\begin{itemize}\n" + "\n".join(items) + "\n\\end{itemize}" if items else ""


def labels(facts: dict[str, Any]) -> str:
    rule = facts["labels"]
    scope = ("the training examples only (per outer fold in cross-validation, so no test label leaks into the threshold)"
             if rule["scope"] == "train" else "all examples, test included (the original study's rule)")  # fmt: skip
    robustness = (f" A robustness row repeats the headline probe with the quantile over {escape(rule['robustness_scope'])} scope."
                  if rule.get("robustness_scope") else "")  # fmt: skip
    return (f"An example is \\emph{{difficult}} when the model is wrong: binary errors (the LM's) are used as they are; "
            f"a continuous error (CRPS) is difficult above its {number(rule['quantile'], 2)} quantile, computed over "
            f"{scope}.{robustness}")  # fmt: skip


def _activation_pool(modality: str, acts: dict[str, Any]) -> str:
    """What one modality's SAEs were trained on (``<modality>.sae_activations.source``)."""
    source = acts.get("source", "corpus")
    if source in ("task_train", "task_train_allpos"):
        rows = "the boundary token" if source == "task_train" and modality == "llm" else "every position"
        return (f"{escape(modality)}: {rows} of each dataset's training-split examples (one SAE per dataset), "
                f"{number(100 * acts['heldout_fraction'], 0)}\\% of those examples held out")  # fmt: skip
    where = f" of {texttt(acts['hub_text']['name'])}" if source == "hub_text" else ""
    return f"{escape(modality)}: {count(acts.get('tokens'))} training-pool tokens{where}, {count(acts.get('heldout_tokens'))} held out"


def saes(facts: dict[str, Any]) -> str:
    sae = facts["sae"]
    archs = ", ".join(escape(a) for a in sae["architectures"])
    sparsity = (f"TopK with $k = {number(sae['k'])}$~\\cite{{gao2024scaling}}" if "topk" in sae["architectures"] else "")
    if "relu" in sae["architectures"]:
        sparsity += ("; " if sparsity else "") + f"ReLU with an L1 coefficient of {number(sae.get('l1_coefficient'))}"
    tokens = "; ".join(_activation_pool(m, s["sae_activations"]) for m, s in facts["modalities"].items())
    expansions = sae["expansions"]
    widths = (", ".join(f"{number(e)}" for e in expansions) if not isinstance(expansions, dict) else
              "; ".join(f"{', '.join(number(e) for e in values)} ({escape(m)})" for m, values in expansions.items()))  # fmt: skip
    seeds = ", ".join(number(s) for s in sae["seeds"])
    return (f"SAEs ({archs}; {sparsity}) are trained with SAELens~\\cite{{bloom2024saelens}} on the residual stream of "
            f"each probed layer at {widths}$\\times$ the model width (the first is the headline width), seeds {seeds}, "
            f"{count(sae['training_tokens'])} training tokens, batch {number(sae['batch_size'])}, learning rate "
            f"{number(sae['lr'], 4)}. Activation pools: {tokens}. An SAE whose held-out explained variance is below "
            f"{number(sae['min_explained_variance'], 2)} is not used for codes (the quality gate). Stability across seeds is "
            "the pairwise mean maximum cosine similarity (PWMCC) of the decoder dictionaries, compared with random "
            f"dictionaries of the same shape ({number(sae.get('stability_random_draws'))} draws; isotropic and matched to the "
            "activations' covariance), as in seed-stability studies of SAEs~\\cite{paulo2025sparse}.")  # fmt: skip


def probes(facts: dict[str, Any], equivalence_margin: float) -> str:
    probe = facts["probe"]
    mode = ("out-of-fold scores over all examples (the tasks' folds; blocked in time for the TSFM, with a purge gap)"
            if probe["mode"] == "cv" else "a held-out test split")  # fmt: skip
    poolings = ", ".join(escape(p) for p in probe["poolings"])
    return (
        "Five probes form a ladder: P1 cheap features (the LM: lexical statistics of the prompt and the model's prompt "
        "likelihood; Chronos: statistics of the context window), P2 cheap + raw activations, "
        "P3 cheap + SAE codes, P4 raw only, P5 SAE only. Each is a standardized L2 logistic regression whose inverse "
        f"regularization is chosen from \\{{{', '.join(number(c, 3) for c in probe['Cs'])}\\}} by {number(probe['inner_folds'])}-fold "
        f"inner cross-validation, scored by {mode}; token poolings {poolings} (the first is the headline). "
        f"AUROCs carry 95\\% bootstrap CIs; $\\Delta$(P3$-$P2) carries a paired-bootstrap CI ({number(probe['n_boot'])} "
        f"resamples; moving blocks for time-ordered windows) and three tests side by side: a paired permutation test "
        f"({number(probe['n_perm'])} permutations), the original study's label permutation and DeLong's "
        "test~\\cite{delong1988comparing}. The verdict on $\\Delta$ uses an equivalence margin "
        f"$m = {number(equivalence_margin, 3)}$ AUROC fixed in advance: \\emph{{SAE adds signal}} when the 95\\% CI lies "
        "above 0, \\emph{SAE worse} when it lies below 0, \\emph{equivalent within $\\pm m$} when the 90\\% CI lies inside "
        "$(-m, m)$ (two one-sided tests at 5\\%~\\cite{schuirmann1987comparison}), otherwise \\emph{inconclusive}."
    )  # fmt: skip


def causal(facts: dict[str, Any]) -> str:
    c = facts["causal"]
    control = ("The effect is causal when $k \\geq 1$ (no random-set control in this run)." if not c.get("n_random_sets") else
               f"The count $k$ of significant features is compared with {number(c['n_random_sets'])} random sets of as many "
               "features matched on firing frequency (deciles): the effect is causal when $k \\geq 1$ and $k$ exceeds the "
               "random sets' 95th percentile.")  # fmt: skip
    per_modality = "; ".join(f"{escape(m)}: up to {number(s['causal'].get('max_examples'))} test examples"
                             for m, s in facts["modalities"].items())  # fmt: skip
    return (
        f"The top {number(c['n_features'])} SAE features by $|$P5 weight$|$ (P5 fitted on training examples) are ablated "
        "one at a time on test examples: at the headline layer the activation is replaced by the SAE reconstruction with "
        "that feature's code set to 0, at all prompt/context positions or at the boundary position only, and compared with "
        "the unablated reconstruction; the change in the loss of the answer (nats for the LM, CRPS for Chronos) is tested "
        f"per feature (Wilcoxon signed-rank, {escape(c['correction'])} correction, family-wise $\\alpha = {number(c['alpha'], 2)}$; "
        f"{per_modality}). {control}"
    )  # fmt: skip


def selective(facts: dict[str, Any]) -> str:
    cal, cas, rules = facts["calibration"], facts["cascade"], facts["synthesis"]
    return (
        "A probe's score ranks examples for abstention: risk--coverage curves keep the lowest-risk fraction of examples "
        "(coverages 0.10 to 1.00), their area (AURC) is compared with the oracle and random orderings as the percentage of "
        "the oracle's gain captured~\\cite{geifman2017selective}. Calibration: expected calibration error with "
        f"{number(cal['n_bins'])} equal-width bins and the Brier score, before and after out-of-fold Platt and isotonic "
        f"recalibration ({number(cal['folds'])} folds). The cascade answers with the cheap model and routes the riskiest "
        f"examples to the expensive one (costs {number(cas['cost_cheap'], 1)} and {number(cas['cost_expensive'], 1)} per "
        f"call, budget {number(cas['budget'], 1)} per example). A selective predictor is \\emph{{deployable}} when P3's "
        f"AUROC CI excludes 0.5 and it captures at least {number(rules['deployable_min_pct_oracle'], 0)}\\% of the oracle's gain."
    )  # fmt: skip


def method_section(facts: dict[str, Any], equivalence_margin: float, sources: Sources) -> str:
    return "\n\n".join([
        r"\subsection{Models}", models(facts, sources),
        r"\subsection{Data and labels}", data(facts, sources), labels(facts),
        r"\subsection{Sparse autoencoders}", saes(facts),
        r"\subsection{Probes and statistics}", probes(facts, equivalence_margin),
        r"\subsection{Causal test}", causal(facts),
        r"\subsection{Selective prediction and cascade}", selective(facts),
        (rf"Run {texttt(facts['name'])}, seed {number(facts['seed'])}; every node is content-addressed in the store "
         r"(Appendix~\ref{sec:provenance})."),
    ]) + "\n"  # fmt: skip
