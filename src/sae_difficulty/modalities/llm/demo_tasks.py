"""LLM tasks: demo record generators, dataset loading, prompts, scoring, cheap features.

Records keep the real datasets' schemas (HellaSwag: ``ctx``, ``endings``[4], ``label``,
``activity_label``, ...; SQuAD: ``id``, ``context``, ``question``,
``answers{text, answer_start}``) plus a string ``id``. The demo generates them from the
``tasks`` role of the Python-shipped corpus (text no backbone was trained on); the paper
profile samples them from the hub. Either way they are written to ``records.jsonl`` and
read back with ``datasets.load_dataset("json", ...)``.

Demo task design (the tiny backbone must get some but not all examples right, or
there is no difficulty label to predict):

* HellaSwag: ``ctx`` = up to ~40 words of preceding sentences (``ctx_a``) plus the first
  words of a sentence (``ctx_b``); the correct ending completes that sentence, the three
  distractors are sentence tails of similar length from other passages.
* SQuAD: ``context`` = a few consecutive sentences; the answer is one word of it that
  occurs at least twice there (so the passage supports it beyond one position); the
  "question" is a cloze cue (the four words right before the answer, which occur once
  in the context) and the prompt is the context followed by the cue, so the model
  answers by continuing the cue: from the passage (in-context copying) or from what it
  knows of such text. Function words make some questions easy, rare content words make
  others hard, which is the spread of difficulty the study needs. (A model of the
  demo's size does not form induction heads within a CPU budget, so multi-word span
  copying would be wrong almost always.) The prompt template and the answer stop
  strings are stored with the tasks (``task.json``) so every stage formats the
  examples identically.
"""


from __future__ import annotations

import collections
import re
import string
from typing import Any

import numpy as np

from sae_difficulty.modalities.llm import corpus as llm_corpus
from sae_difficulty.modalities.llm.squad_metric import normalize_answer
from sae_difficulty.utils.errors import InputError

HELLASWAG_CTX_A_WORDS = 40
HELLASWAG_MAX_ENDING_WORDS = 20
SQUAD_MAX_CONTEXT_WORDS = 70
SQUAD_CUE_WORDS = 4
SQUAD_QUESTIONS_PER_CONTEXT = 3
#: The answer word occurs at least this often in the context (so the passage supports it beyond the cue's position).
SQUAD_MIN_ANSWER_COUNT = 2

_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[A-Z\"'(*])")


# ----------------------------------------------------------------------------- generation


def split_sentences(paragraph: str) -> list[str]:
    """Sentences of a one-line prose paragraph (a period followed by a capitalized word)."""
    return [s.strip() for s in _SENTENCE_END.split(paragraph) if s.strip()]


def task_paragraphs() -> list[tuple[str, str]]:
    """(document key, paragraph) for every prose paragraph of the ``tasks`` corpus role.

    Skipped: paragraphs with a sentence that also occurs in the prose of another role
    (pydoc repeats some notes across topics, and a repeated sentence would put task
    text into the backbone's or the SAEs' training text), and paragraphs with square
    brackets (HellaSwag preprocessing deletes bracketed text, changing the prompt).
    """
    other_prose = "\n".join(doc.text for role in llm_corpus.ROLES if role != "tasks" for doc in llm_corpus.documents_for(role, ("prose",)))
    out = []
    for doc in llm_corpus.documents_for("tasks", ("prose",)):
        for paragraph in doc.text.split("\n\n"):
            if not llm_corpus.is_prose_paragraph(paragraph) or "[" in paragraph or "]" in paragraph:
                continue
            if any(len(s.split()) >= 4 and s in other_prose for s in split_sentences(paragraph)):
                continue
            out.append((doc.key, paragraph.strip()))
    return out


def _topic(key: str) -> str:
    return key.split("/")[1] if key.count("/") >= 2 else key


def _not_enough(dataset: str, available: int, wanted: int) -> InputError:
    return InputError(
        f"llm datasets.{dataset}.n_examples={wanted} but the demo corpus yields only {available} distinct examples; "
        f"lower n_examples to at most {available}"
    )


def demo_hellaswag_records(n_examples: int, seed: int) -> list[dict[str, Any]]:
    """``n_examples`` HellaSwag-schema records from held-apart prose (see the module docstring)."""
    rng = np.random.default_rng(seed)
    candidates = []  # (key, ctx_a, words of the sentence)
    for key, paragraph in task_paragraphs():
        sentences = split_sentences(paragraph)
        for index, sentence in enumerate(sentences):
            words = sentence.split()
            if len(words) >= 6:
                previous = " ".join(sentences[:index]).split()
                candidates.append((key, " ".join(previous[-HELLASWAG_CTX_A_WORDS:]), words))
    if len(candidates) < max(n_examples, 8):
        raise _not_enough("hellaswag", len(candidates), n_examples)

    def split_point(words: list[str]) -> int:
        low = max(1, len(words) - HELLASWAG_MAX_ENDING_WORDS)
        return int(rng.integers(low, len(words) - 2))

    tails = [(key, words[split_point(words) :]) for key, _, words in candidates]
    chosen = np.sort(rng.choice(len(candidates), size=n_examples, replace=False))
    records = []
    for ind, index in enumerate(chosen):
        key, ctx_a, words = candidates[index]
        k = split_point(words)
        ending = words[k:]
        pool = [
            i for i, (other_key, tail) in enumerate(tails) if other_key != key and abs(len(tail) - len(ending)) <= max(2, 0.3 * len(ending))
        ]
        if len(pool) < 3:
            pool = [i for i, (other_key, _) in enumerate(tails) if other_key != key]
        distractors = [" ".join(tails[i][1]) for i in rng.choice(pool, size=3, replace=False)]
        label = int(rng.integers(0, 4))
        endings = distractors[:label] + [" ".join(ending)] + distractors[label:]
        ctx_b = " ".join(words[:k])
        records.append(
            {
                "id": f"hellaswag-demo-{ind:05d}",
                "ind": ind,
                "activity_label": _topic(key),
                "ctx_a": ctx_a,
                "ctx_b": ctx_b,
                "ctx": f"{ctx_a} {ctx_b}".strip(),
                "endings": endings,
                "label": label,
                "source_id": key,
                "split": "val",
                "split_type": "indomain",
            }
        )
    return records


def _answer_spans(context: str) -> list[tuple[str, str, int]]:
    """(cue, answer, answer_start) for every word of ``context`` that can be a demo answer.

    The answer is one alphabetic word (trailing punctuation not included) that SQuAD
    normalization keeps (not an article) and that occurs at least
    ``SQUAD_MIN_ANSWER_COUNT`` times in the context; the cue is the ``SQUAD_CUE_WORDS`` words right
    before it, within the same sentence, and must occur exactly once in the context, so
    the question has one answer.
    """
    words = context.split(" ")
    starts = np.cumsum([0] + [len(w) + 1 for w in words[:-1]])
    counts = collections.Counter(w.strip(string.punctuation).lower() for w in words)
    spans = []
    for index in range(SQUAD_CUE_WORDS, len(words)):
        answer = words[index].rstrip(",.;:!?")
        if not answer.isalpha() or not normalize_answer(answer) or counts[answer.lower()] < SQUAD_MIN_ANSWER_COUNT:
            continue
        cue_words = words[index - SQUAD_CUE_WORDS : index]
        if any(word[-1:] in ".!?:" for word in cue_words):  # the cue stays inside the answer's sentence
            continue
        cue = " ".join(cue_words)
        if context.count(cue + " ") == 1:
            spans.append((cue, answer, int(starts[index])))
    return spans


def demo_squad_records(n_examples: int, seed: int) -> list[dict[str, Any]]:
    """``n_examples`` SQuAD-schema records from held-apart prose (see the module docstring)."""
    rng = np.random.default_rng(seed)
    candidates = []  # (key, context, cue, answer, answer_start)
    for key, paragraph in task_paragraphs():
        sentences = split_sentences(paragraph)
        context_sentences: list[str] = []
        contexts = []
        for sentence in sentences:  # consecutive sentences, at most SQUAD_MAX_CONTEXT_WORDS words
            if context_sentences and len(" ".join(context_sentences + [sentence]).split()) > SQUAD_MAX_CONTEXT_WORDS:
                contexts.append(" ".join(context_sentences))
                context_sentences = []
            context_sentences.append(sentence)
        contexts.append(" ".join(context_sentences))
        for context in contexts:
            if len(context.split()) > SQUAD_MAX_CONTEXT_WORDS:
                continue
            spans = _answer_spans(context)
            # a few questions per context keeps the examples spread over passages
            for i in rng.permutation(len(spans))[:SQUAD_QUESTIONS_PER_CONTEXT]:
                candidates.append((key, context, *spans[i]))
    if len(candidates) < n_examples:
        raise _not_enough("squad", len(candidates), n_examples)
    chosen = np.sort(rng.choice(len(candidates), size=n_examples, replace=False))
    records = []
    for ind, index in enumerate(chosen):
        key, context, cue, answer, answer_start = candidates[index]
        assert context[answer_start : answer_start + len(answer)] == answer
        records.append(
            {
                "id": f"squad-demo-{ind:05d}",
                "title": _topic(key),
                "context": context,
                "question": cue,
                "answers": {"text": [answer], "answer_start": [answer_start]},
            }
        )
    return records
