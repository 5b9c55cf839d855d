"""The SQuAD v1.1 answer normalisation, exact match and token F1."""


from __future__ import annotations

import collections
import re
import string

# ----------------------------------------------------------------------------- scoring


def normalize_answer(text: str) -> str:
    """SQuAD v1.1 answer normalization (lower case, no punctuation/articles, single spaces).

    Written out because the official script is not a library function in the installed
    stack (``evaluate``'s squad metric would be an extra dependency for ten lines).
    """
    text = "".join(ch for ch in text.lower() if ch not in set(string.punctuation))
    text = re.sub(r"\b(a|an|the)\b", " ", text)
    return " ".join(text.split())


def squad_scores(prediction: str, gold_answers: tuple[str, ...]) -> tuple[float, float]:
    """(exact match, F1) of a prediction against the gold answers (max over answers, SQuAD v1.1)."""
    pred = normalize_answer(prediction)
    pred_tokens = pred.split()
    best_em, best_f1 = 0.0, 0.0
    for gold in gold_answers:
        gold_norm = normalize_answer(gold)
        best_em = max(best_em, float(pred == gold_norm))
        gold_tokens = gold_norm.split()
        common = sum((collections.Counter(pred_tokens) & collections.Counter(gold_tokens)).values())
        if common:
            precision, recall = common / len(pred_tokens), common / len(gold_tokens)
            best_f1 = max(best_f1, 2 * precision * recall / (precision + recall))
        elif not pred_tokens and not gold_tokens:
            best_f1 = max(best_f1, 1.0)
    return best_em, best_f1
