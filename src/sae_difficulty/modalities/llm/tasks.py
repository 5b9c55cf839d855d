"""LM task records: the dataset specs, hub loading and reading records back as examples.

Records keep the real datasets' schemas (HellaSwag: ``ctx``, ``endings``[4], ``label``,
``activity_label``, ...; SQuAD: ``id``, ``context``, ``question``,
``answers{text, answer_start}``) plus a string ``id``. The demo generates them
(:mod:`.demo_tasks`); the paper profile samples them from the hub. Either way they are
written to ``records.jsonl`` and read back with ``datasets.load_dataset("json", ...)``.
"""


from __future__ import annotations

import json
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from sae_difficulty.modalities.llm.demo_tasks import (
    demo_hellaswag_records,
    demo_squad_records,
)
from sae_difficulty.utils.errors import InputError
from sae_difficulty.utils.io import read_json, write_json, write_parquet

DATASETS = ("hellaswag", "squad")
DEFAULT_HUB_SPLIT = "validation"
#: Prompt templates: the demo cue is continued directly; the hub QA format of the original study.
DEMO_SQUAD_TEMPLATE = "{context}\n\n{question}"
HUB_SQUAD_TEMPLATE = "Context: {context}\nQuestion: {question}\nAnswer:"
#: A greedy prediction (leading spaces removed) ends at the first of these strings; demo answers are one word.
DEMO_ANSWER_STOP = (" ", "\n", ".", ",", ";", ":", "?", "!", '"')
HUB_ANSWER_STOP = ("\n",)


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
