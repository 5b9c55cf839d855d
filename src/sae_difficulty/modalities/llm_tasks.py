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
import json
import re
import string
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from tqdm.auto import tqdm

from sae_difficulty.errors import InputError
from sae_difficulty.io import read_json, write_json, write_parquet
from sae_difficulty.modalities import llm_corpus
from sae_difficulty.modalities.llm_backbone import Backbone

DATASETS = ("hellaswag", "squad")
DEFAULT_HUB_SPLIT = "validation"
#: Prompt templates: the demo cue is continued directly; the hub QA format of the original study.
DEMO_SQUAD_TEMPLATE = "{context}\n\n{question}"
HUB_SQUAD_TEMPLATE = "Context: {context}\nQuestion: {question}\nAnswer:"
#: A greedy prediction (leading spaces removed) ends at the first of these strings; demo answers are one word.
DEMO_ANSWER_STOP = (" ", "\n", ".", ",", ";", ":", "?", "!", '"')
HUB_ANSWER_STOP = ("\n",)

HELLASWAG_CTX_A_WORDS = 40
HELLASWAG_MAX_ENDING_WORDS = 20
SQUAD_MAX_CONTEXT_WORDS = 70
SQUAD_CUE_WORDS = 4
SQUAD_QUESTIONS_PER_CONTEXT = 3
#: The answer word occurs at least this often in the context (so the passage supports it beyond the cue's position).
SQUAD_MIN_ANSWER_COUNT = 2

_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[A-Z\"'(*])")


@dataclass(frozen=True)
class TaskSpec:
    """What a tasks dir holds and how its examples are turned into prompts (``task.json``)."""

    dataset: str
    source: str
    prompt_template: str | None = None
    answer_stop: tuple[str, ...] = ()

    @classmethod
    def read(cls, tasks_dir: Path) -> TaskSpec:
        path = Path(tasks_dir) / "task.json"
        if not path.exists():
            raise InputError(f"tasks dir {tasks_dir} has no task.json; expected a directory written by build_tasks")
        raw = read_json(path)
        return cls(
            dataset=raw["dataset"],
            source=raw["source"],
            prompt_template=raw.get("prompt_template"),
            answer_stop=tuple(raw.get("answer_stop", ())),
        )


@dataclass(frozen=True)
class Example:
    """One record turned into text: the prompt, the scored continuation(s) and the gold answer.

    ``continuations`` are the HellaSwag endings (with their leading space); for SQuAD it
    is the single gold answer. ``target`` indexes the continuation whose nats the causal
    patching measures.
    """

    id: str
    prompt: str
    continuations: tuple[str, ...]
    target: int
    gold_answers: tuple[str, ...] = ()


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


# ----------------------------------------------------------------------------- building / loading


def _hub_records(dataset: str, hub: str, split: str, n_examples: int, seed: int) -> list[dict[str, Any]]:
    import datasets

    table = datasets.load_dataset(hub, split=split)
    if len(table) < n_examples:
        raise InputError(f"llm datasets.{dataset}: hub dataset {hub}[{split}] has {len(table)} records, fewer than n_examples={n_examples}")
    rows = np.sort(np.random.default_rng(seed).choice(len(table), size=n_examples, replace=False))
    records = []
    for row in rows:
        record = dict(table[int(row)])
        if dataset == "hellaswag":
            if record.get("label") in (None, ""):
                raise InputError(f"llm datasets.hellaswag: hub split {hub}[{split}] has unlabeled records; use the validation split")
            record["label"] = int(record["label"])
            record["id"] = f"hellaswag-{record.get('ind', row)}"
        else:
            record["id"] = str(record["id"])
        records.append(record)
    return records


def build_tasks(dataset: str, params: dict[str, Any], out_dir: str | Path, seed: int) -> dict[str, Any]:
    """Write ``records.jsonl``, ``examples.parquet`` and ``task.json`` for ``dataset`` into ``out_dir``.

    ``params`` (``llm.datasets.<dataset>``): ``hub`` (null: demo records; else a hub
    dataset name), ``split`` (hub split, "validation"), ``n_examples`` (400),
    ``test_fraction`` (0.3), ``cv_folds`` (5), ``prompt_template`` and ``answer_stop``
    (SQuAD; defaults depend on demo/hub, see the module constants). ``enabled`` is ignored.
    """
    if dataset not in DATASETS:
        raise InputError(f"llm dataset {dataset!r} is unknown; expected one of {list(DATASETS)}")
    params = dict(params or {})
    known = {"enabled", "hub", "split", "n_examples", "test_fraction", "cv_folds", "prompt_template", "answer_stop"}
    unknown = sorted(set(params) - known)
    if unknown:
        raise InputError(f"llm datasets.{dataset}: unknown key(s) {unknown}; expected some of {sorted(known)}")
    n_examples = int(params.get("n_examples", 400))
    test_fraction = float(params.get("test_fraction", 0.3))
    cv_folds = int(params.get("cv_folds", 5))
    if n_examples < cv_folds or not 0 < test_fraction < 1:
        raise InputError(
            f"llm datasets.{dataset}: need n_examples >= cv_folds and 0 < test_fraction < 1 (got {n_examples}, {cv_folds}, {test_fraction})"
        )
    hub = params.get("hub")
    if hub:
        records = _hub_records(dataset, hub, params.get("split", DEFAULT_HUB_SPLIT), n_examples, seed)
    else:
        generate = demo_hellaswag_records if dataset == "hellaswag" else demo_squad_records
        records = generate(n_examples, seed)

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    with open(out_dir / "records.jsonl", "w", encoding="utf-8") as handle:
        for record in records:
            handle.write(json.dumps(record, sort_keys=True, ensure_ascii=False) + "\n")
    spec = {"dataset": dataset, "source": hub or "demo"}
    if dataset == "squad":
        spec["prompt_template"] = params.get("prompt_template") or (HUB_SQUAD_TEMPLATE if hub else DEMO_SQUAD_TEMPLATE)
        spec["answer_stop"] = list(params.get("answer_stop") or (HUB_ANSWER_STOP if hub else DEMO_ANSWER_STOP))
    write_json(out_dir / "task.json", spec)

    rng = np.random.default_rng(seed)
    n_test = int(round(test_fraction * n_examples))
    is_test = np.zeros(n_examples, dtype=bool)
    is_test[rng.permutation(n_examples)[:n_test]] = True
    folds = rng.permutation(np.arange(n_examples) % cv_folds)
    ids = [record["id"] for record in records]
    if len(set(ids)) != len(ids):
        raise InputError(f"llm datasets.{dataset}: record ids are not unique")
    examples = pd.DataFrame({"id": ids, "split": np.where(is_test, "test", "train"), "fold": folds.astype(np.int64)})
    write_parquet(out_dir / "examples.parquet", examples)
    return {
        "dataset": dataset,
        "source": spec["source"],
        "n_examples": n_examples,
        "n_train": int((~is_test).sum()),
        "n_test": int(is_test.sum()),
        "cv_folds": cv_folds,
    }


def load_records(tasks_dir: str | Path) -> tuple[TaskSpec, list[dict[str, Any]]]:
    """The task spec and the records of a tasks dir, parsed by ``datasets.load_dataset("json")``."""
    import datasets

    tasks_dir = Path(tasks_dir)
    spec = TaskSpec.read(tasks_dir)
    path = tasks_dir / "records.jsonl"
    if not path.exists():
        raise InputError(f"tasks dir {tasks_dir} has no records.jsonl")
    with tempfile.TemporaryDirectory(prefix="sae-difficulty-datasets-") as cache:
        table = datasets.load_dataset("json", data_files=str(path), split="train", cache_dir=cache, keep_in_memory=True)
        records = table.to_list()
    required = ("ctx", "endings", "label") if spec.dataset == "hellaswag" else ("context", "question", "answers")
    for i, record in enumerate(records):
        missing = [key for key in ("id", *required) if key not in record]
        if missing:
            raise InputError(f"{path} record {i}: missing field(s) {missing} of the {spec.dataset} schema")
    return spec, records


def hellaswag_preprocess(text: str) -> str:
    """The standard HellaSwag text cleaning (as in lm-evaluation-harness)."""
    text = text.strip().replace(" [title]", ". ")
    text = re.sub(r"\[.*?\]", "", text)
    return text.replace("  ", " ")


def to_example(spec: TaskSpec, record: dict[str, Any]) -> Example:
    """The prompt and scored continuations of one record."""
    if spec.dataset == "hellaswag":
        endings = tuple(" " + hellaswag_preprocess(e) for e in record["endings"])
        if len(endings) != 4 or not 0 <= int(record["label"]) < 4:
            raise InputError(f"hellaswag record {record['id']}: expected 4 endings and label in 0..3")
        return Example(id=str(record["id"]), prompt=hellaswag_preprocess(record["ctx"]), continuations=endings, target=int(record["label"]))
    answers = tuple(record["answers"]["text"])
    if not answers:
        raise InputError(f"squad record {record['id']}: answers.text is empty")
    prompt = spec.prompt_template.format(context=record["context"], question=record["question"])
    return Example(id=str(record["id"]), prompt=prompt, continuations=(" " + answers[0].strip(),), target=0, gold_answers=answers)


def load_examples(tasks_dir: str | Path, max_examples: int | None = None) -> tuple[TaskSpec, list[Example]]:
    spec, records = load_records(tasks_dir)
    examples = [to_example(spec, record) for record in records]
    return spec, examples[:max_examples] if max_examples else examples


# ----------------------------------------------------------------------------- model helpers


def encode_prompt(backbone: Backbone, prompt: str, reserve: int = 0) -> list[int]:
    """``[bos] + tokens(prompt)``, left-truncated (BOS kept) so ``reserve`` more tokens fit the context."""
    return [backbone.bos_id] + backbone.encode(prompt)[-_prompt_room(backbone, reserve) :]


def _prompt_room(backbone: Backbone, reserve: int) -> int:
    """Prompt tokens that fit after BOS when ``reserve`` tokens must follow."""
    room = backbone.n_ctx - 1 - reserve
    if room < 1:
        raise InputError(f"a continuation of {reserve} tokens does not fit the model context of {backbone.n_ctx}")
    return room


def encode_prompts(backbone: Backbone, prompts: list[str], reserve: int = 0) -> list[list[int]]:
    """:func:`encode_prompt` of many prompts in one batched tokenizer call (the Rust
    tokenizer encodes the batch without per-call Python overhead: ~1 ms per prompt)."""
    room = _prompt_room(backbone, reserve)
    if not prompts:
        return []
    encoded = backbone.tokenizer(list(prompts), add_special_tokens=False)["input_ids"]
    return [[backbone.bos_id] + list(ids[-room:]) for ids in encoded]


def encode_continuation(backbone: Backbone, text: str) -> list[int]:
    """Token ids of a scored continuation, cut to half the model context (only a tiny demo
    model's context is ever that short; the prompt then keeps the other half)."""
    return backbone.encode(text)[: backbone.n_ctx // 2]


def right_pad(sequences: list[list[int]], pad_id: int) -> torch.Tensor:
    """Sequences as one right-padded tensor (causal attention never sees the padding)."""
    width = max(len(s) for s in sequences)
    out = torch.full((len(sequences), width), pad_id, dtype=torch.long)
    for i, s in enumerate(sequences):
        out[i, : len(s)] = torch.tensor(s, dtype=torch.long)
    return out


def token_nll(logits: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
    """Negative log-likelihood (nats) of ``tokens[:, 1:]`` under ``logits[:, :-1]``: [batch, pos-1]."""
    log_probs = torch.log_softmax(logits[:, :-1].float(), dim=-1)
    return -log_probs.gather(-1, tokens[:, 1:, None]).squeeze(-1)


def continuation_nll(backbone: Backbone, pairs: list[tuple[list[int], list[int]]], batch_size: int, desc: str | None = None):
    """For each (prompt ids, continuation ids): per-token NLL of the continuation and of the prompt.

    Returns two lists of 1-D numpy arrays (continuation NLLs, prompt NLLs after BOS).
    """
    model = backbone.model
    pad = backbone.tokenizer.pad_token_id if backbone.tokenizer.pad_token_id is not None else backbone.bos_id
    answer_nll, prompt_nll = [], []
    batches = range(0, len(pairs), batch_size)
    for start in tqdm(batches, desc=desc, file=sys.stderr, disable=desc is None, mininterval=5.0):
        chunk = pairs[start : start + batch_size]
        tokens = right_pad([p + c for p, c in chunk], pad).to(backbone.device)
        with torch.no_grad():
            nll = token_nll(model(tokens), tokens).cpu().numpy()
        for row, (p, c) in enumerate(chunk):
            answer_nll.append(nll[row, len(p) - 1 : len(p) + len(c) - 1].astype(np.float64))
            prompt_nll.append(nll[row, : len(p) - 1].astype(np.float64))
    return answer_nll, prompt_nll


def greedy_answer(backbone: Backbone, prompt_ids: list[int], max_new_tokens: int, stop: tuple[str, ...]) -> str:
    """Greedy continuation of ``prompt_ids`` (TransformerLens ``generate``), cut at the first stop string."""
    tokens = torch.tensor([prompt_ids], dtype=torch.long, device=backbone.device)
    with torch.no_grad():
        out = backbone.model.generate(
            tokens,
            max_new_tokens=max_new_tokens,
            do_sample=False,
            stop_at_eos=True,
            eos_token_id=backbone.tokenizer.eos_token_id,
            verbose=False,
            return_type="tokens",
        )
    text = backbone.tokenizer.decode(out[0, len(prompt_ids) :].tolist(), skip_special_tokens=True).lstrip(" ")
    cut = min((text.find(s) for s in stop if s in text), default=len(text))
    return text[:cut].strip()


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


# ----------------------------------------------------------------------------- cheap features


def text_features(text: str) -> dict[str, float]:
    """Lexical statistics of a prompt: sizes, vocabulary richness, character composition."""
    words = text.split()
    n_chars = max(len(text), 1)
    lowered = [w.strip(string.punctuation).lower() for w in words]
    lowered = [w for w in lowered if w]
    return {
        "prompt_chars": float(len(text)),
        "prompt_words": float(len(words)),
        "type_token_ratio": float(len(set(lowered)) / len(lowered)) if lowered else 0.0,
        "mean_word_length": float(np.mean([len(w) for w in lowered])) if lowered else 0.0,
        "digit_fraction": sum(ch.isdigit() for ch in text) / n_chars,
        "punct_fraction": sum(ch in string.punctuation for ch in text) / n_chars,
        "uppercase_fraction": sum(ch.isupper() for ch in text) / n_chars,
        "sentences": float(max(1, len(split_sentences(" ".join(words))))),
    }


def model_features(prompt_ids: list[int], prompt_nll: np.ndarray, n_ctx: int) -> dict[str, float]:
    """Prompt statistics that need the model's tokenizer and output (never its residual stream)."""
    mean_nll = float(prompt_nll.mean()) if len(prompt_nll) else 0.0
    return {
        "prompt_tokens": float(len(prompt_ids) - 1),
        "prompt_mean_nll": mean_nll,
        "prompt_perplexity": float(np.exp(min(mean_nll, 50.0))),
        "prompt_max_nll": float(prompt_nll.max()) if len(prompt_nll) else 0.0,
        "prompt_fills_context": float(len(prompt_ids) >= n_ctx - 1),
    }


def _word_set(text: str) -> set[str]:
    return {w.strip(string.punctuation).lower() for w in text.split()} - {""}


def hellaswag_features(record: dict[str, Any], ending_ids: list[list[int]]) -> dict[str, float]:
    lengths = np.array([len(ids) for ids in ending_ids], dtype=float)
    chars = np.array([len(e) for e in record["endings"]], dtype=float)
    ctx_words = _word_set(record["ctx"])
    overlaps = [len(_word_set(e) & ctx_words) / max(len(_word_set(e)), 1) for e in record["endings"]]
    return {
        "ending_tokens_mean": float(lengths.mean()),
        "ending_tokens_spread": float(lengths.max() - lengths.min()),
        "ending_chars_mean": float(chars.mean()),
        "ending_chars_std": float(chars.std()),
        "ending_context_overlap_mean": float(np.mean(overlaps)),
        "ending_context_overlap_spread": float(np.max(overlaps) - np.min(overlaps)),
        "ctx_b_words": float(len(str(record.get("ctx_b", "")).split())),
    }


def squad_features(record: dict[str, Any], backbone: Backbone) -> dict[str, float]:
    question_words = _word_set(record["question"])
    context_words = _word_set(record["context"])
    return {
        "context_words": float(len(record["context"].split())),
        "context_tokens": float(len(backbone.encode(record["context"]))),
        "question_words": float(len(record["question"].split())),
        "question_tokens": float(len(backbone.encode(record["question"]))),
        "question_context_overlap": len(question_words & context_words) / max(len(question_words), 1),
    }


# ----------------------------------------------------------------------------- evaluation


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
    greedy generation). HellaSwag: the chosen ending is the argmax of the mean per-token
    log-likelihood of the ending given ``ctx``; ``correct`` = chosen == label. SQuAD:
    greedy generation after the prompt, cut at the task's stop strings; ``correct`` =
    exact match, ``f1`` recorded. ``error`` = 1 - correct. Cheap features are ``cheap__*``.
    ``seed`` is unused (evaluation is deterministic) and kept for the protocol.
    """
    del seed
    batch_size = int(params.get("batch_size", 16))
    max_new_tokens = int(params.get("max_new_tokens", 8))
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
        for i, (ex, record) in enumerate(
            tqdm(list(zip(examples, records)), desc="evaluate squad: generate", file=sys.stderr, mininterval=5.0)
        ):
            prediction = greedy_answer(backbone, prompts[i], max_new_tokens, spec.answer_stop)
            exact, f1 = squad_scores(prediction, ex.gold_answers)
            row = {"id": ex.id, "error": 1.0 - exact, "correct": exact, "exact_match": exact, "f1": f1, "prediction": prediction}
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
