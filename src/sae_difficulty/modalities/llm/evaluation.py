"""Evaluate the LM on its task records: correctness / gold-answer perplexity plus cheap features, one row per example."""


from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from sae_difficulty.modalities.llm.backbone import Backbone
from sae_difficulty.modalities.llm.features import (
    hellaswag_features,
    model_features,
    squad_features,
    text_features,
)
from sae_difficulty.modalities.llm.prompts import encode_continuation, encode_prompt
from sae_difficulty.modalities.llm.scoring import continuation_nll, greedy_answer
from sae_difficulty.modalities.llm.squad_metric import squad_scores
from sae_difficulty.modalities.llm.tasks import load_records, to_example
from sae_difficulty.utils.errors import InputError

# ----------------------------------------------------------------------------- evaluation

#: What a SQuAD example's error is: 1 - exact match of the greedy answer (binary), or the
#: perplexity of the gold answer after the prompt (continuous; the original study's label).
SQUAD_ERRORS = ("exact_match", "gold_answer_perplexity")


def check_both_classes(errors: np.ndarray, what: str) -> None:
    """One-line error when every example is right (or every one wrong): no difficulty label then."""
    if np.all(errors == errors[0]):
        state = "wrong" if errors[0] else "right"
        raise InputError(
            f"{what}: the backbone gets all {len(errors)} examples {state}, so the difficulty label has a single class; use a harder/easier task or another backbone"
        )


def evaluate(backbone: Backbone, tasks_dir: str | Path, params: dict[str, Any], seed: int) -> pd.DataFrame:
    """Score the backbone on every record of ``tasks_dir``; one row per example in tasks order.

    ``params`` (``llm.evaluate``): ``batch_size`` (16), ``max_new_tokens`` (8, SQuAD
    greedy generation), ``squad_error`` ("exact_match"). HellaSwag: the chosen ending is
    the argmax of the mean per-token log-likelihood of the ending given ``ctx``;
    ``correct`` = chosen == label; ``error`` = 1 - correct. SQuAD: greedy generation after
    the prompt, cut at the task's stop strings; ``correct`` = exact match, ``f1`` recorded;
    ``gold_answer_perplexity`` = exp(mean NLL per token of the first gold answer after the
    prompt), recorded always; ``error`` = 1 - exact match, or with ``squad_error:
    gold_answer_perplexity`` (the original study's SQuAD label) that perplexity, a
    continuous error whose top quantile is difficult. Cheap features are ``cheap__*`` and
    see the prompt only: the gold answer's perplexity is the label, so a cheap feature
    computed from it would leak the label.
    ``seed`` is unused (evaluation is deterministic) and kept for the protocol.
    """
    del seed
    batch_size = int(params.get("batch_size", 16))
    max_new_tokens = int(params.get("max_new_tokens", 8))
    squad_error = str(params.get("squad_error", "exact_match"))
    if squad_error not in SQUAD_ERRORS:
        raise InputError(f"llm.evaluate.squad_error: expected one of {list(SQUAD_ERRORS)}, got {squad_error!r}")
    spec, records = load_records(tasks_dir)
    examples = [to_example(spec, r) for r in records]
    rows: list[dict[str, Any]] = []
    if spec.dataset == "hellaswag":
        pairs, ending_ids = [], []
        for ex in examples:
            conts = [encode_continuation(backbone, c) for c in ex.continuations]
            prompt = encode_prompt(backbone, ex.prompt, reserve=max(len(c) for c in conts))
            ending_ids.append(conts)
            pairs.extend((prompt, c) for c in conts)
        answer_nll, prompt_nll = continuation_nll(backbone, pairs, batch_size, desc="evaluate hellaswag")
        for i, (ex, record) in enumerate(zip(examples, records)):
            lls = np.array([-answer_nll[4 * i + j].mean() for j in range(4)])
            chosen = int(np.argmax(lls))
            correct = float(chosen == ex.target)
            prompt_ids = pairs[4 * i][0]
            row = {"id": ex.id, "error": 1.0 - correct, "correct": correct, "chosen": chosen, "label": ex.target}
            row.update({f"ll_norm_{j}": float(lls[j]) for j in range(4)})
            row["ll_margin"] = float(lls[ex.target] - np.max(np.delete(lls, ex.target)))
            features = {
                **text_features(ex.prompt),
                **model_features(prompt_ids, prompt_nll[4 * i], backbone.n_ctx),
                **hellaswag_features(record, ending_ids[i]),
            }
            row.update({f"cheap__{k}": float(v) for k, v in features.items()})
            rows.append(row)
    else:
        prompts = [encode_prompt(backbone, ex.prompt, reserve=max_new_tokens) for ex in examples]
        _, prompt_nll = continuation_nll(backbone, [(p, []) for p in prompts], batch_size, desc="evaluate squad: prompt perplexity")
        gold_pairs = []
        for ex in examples:
            gold = encode_continuation(backbone, ex.continuations[0])
            gold_pairs.append((encode_prompt(backbone, ex.prompt, reserve=len(gold)), gold))
        gold_nll, _ = continuation_nll(backbone, gold_pairs, batch_size, desc="evaluate squad: gold-answer perplexity")
        for i, (ex, record) in enumerate(
            tqdm(list(zip(examples, records)), desc="evaluate squad: generate", file=sys.stderr, mininterval=5.0)
        ):
            prediction = greedy_answer(backbone, prompts[i], max_new_tokens, spec.answer_stop)
            exact, f1 = squad_scores(prediction, ex.gold_answers)
            gold_perplexity = float(np.exp(min(float(gold_nll[i].mean()), 50.0)))
            error = gold_perplexity if squad_error == "gold_answer_perplexity" else 1.0 - exact
            row = {"id": ex.id, "error": error, "correct": exact, "exact_match": exact, "f1": f1, "prediction": prediction,
                   "gold_answer_perplexity": gold_perplexity}  # fmt: skip
            features = {
                **text_features(ex.prompt),
                **model_features(prompts[i], prompt_nll[i], backbone.n_ctx),
                **squad_features(record, backbone),
            }
            row.update({f"cheap__{k}": float(v) for k, v in features.items()})
            rows.append(row)
    table = pd.DataFrame(rows)
    check_both_classes(table["error"].to_numpy(), f"llm evaluate {spec.dataset} with {backbone.source}")
    return table
