"""LLM tasks: demo generators in the real schemas, task dirs, scoring and evaluation."""

from __future__ import annotations

import json
import os

import numpy as np
import pandas as pd
import pytest
import torch

from sae_difficulty.modalities.llm import backbone as llm_backbone
from sae_difficulty.modalities.llm import corpus as llm_corpus
from sae_difficulty.modalities.llm.demo_tasks import (
    SQUAD_CUE_WORDS,
    demo_hellaswag_records,
    demo_squad_records,
    task_paragraphs,
)
from sae_difficulty.modalities.llm.evaluation import check_both_classes, evaluate
from sae_difficulty.modalities.llm.prompts import encode_continuation, encode_prompt
from sae_difficulty.modalities.llm.squad_metric import normalize_answer, squad_scores
from sae_difficulty.modalities.llm.tasks import (
    DEMO_SQUAD_TEMPLATE,
    build_tasks,
    load_records,
)
from sae_difficulty.utils.errors import InputError

os.environ["HF_HUB_OFFLINE"] = "1"
torch.set_num_threads(1)


def make_tiny_model(path, n_ctx: int = 512, seed: int = 0):
    """A random GPT-NeoX with peaked predictions (scaled unembedding), saved in HF format."""
    from transformers import GPTNeoXForCausalLM

    tokenizer = llm_corpus.train_tokenizer([d.text for d in llm_corpus.backbone_documents(60_000, 0)], 1000)
    params = llm_backbone.BackboneParams(d_model=32, n_layers=2, n_heads=4, d_mlp=64, context_length=n_ctx)
    torch.manual_seed(seed)
    model = GPTNeoXForCausalLM(llm_backbone.gpt_neox_config(params, len(tokenizer)))
    with torch.no_grad():
        model.embed_out.weight.mul_(20.0) if hasattr(model, "embed_out") else model.lm_head.weight.mul_(20.0)
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    from transformers import GPTNeoXForCausalLM

    path = make_tiny_model(tmp_path_factory.mktemp("tiny"))
    return llm_backbone.load_backbone(path, device="cpu"), GPTNeoXForCausalLM.from_pretrained(path).eval()


def read_jsonl(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_demo_hellaswag_records_have_the_schema_and_the_true_continuation():
    records = demo_hellaswag_records(60, seed=1)
    assert len(records) == 60 and len({r["id"] for r in records}) == 60
    by_key: dict[str, list[str]] = {}
    for key, paragraph in task_paragraphs():
        by_key.setdefault(key, []).append(paragraph)
    labels = []
    for record in records:
        assert set(record) >= {"ind", "activity_label", "ctx_a", "ctx_b", "ctx", "endings", "label", "source_id", "split", "split_type"}
        assert isinstance(record["label"], int) and 0 <= record["label"] < 4 and len(record["endings"]) == 4
        assert record["ctx"] == f"{record['ctx_a']} {record['ctx_b']}".strip()
        labels.append(record["label"])
        source = by_key[record["source_id"]]
        true_text = f"{record['ctx_b']} {record['endings'][record['label']]}"
        assert any(true_text in p for p in source)
        for j, ending in enumerate(record["endings"]):
            if j != record["label"]:
                assert not any(f"{record['ctx_b']} {ending}" in p for p in source)
    assert len(set(labels)) == 4  # the label position is randomized
    assert demo_hellaswag_records(60, seed=1) == records
    assert demo_hellaswag_records(60, seed=2) != records


def test_demo_squad_records_have_correct_spans_and_unique_cues():
    records = demo_squad_records(60, seed=1)
    assert len({r["id"] for r in records}) == 60
    for record in records:
        answer, start = record["answers"]["text"][0], record["answers"]["answer_start"][0]
        assert record["context"][start : start + len(answer)] == answer
        assert answer.isalpha() and normalize_answer(answer)
        cue = record["question"]
        assert len(cue.split()) == SQUAD_CUE_WORDS and record["context"].count(cue + " ") == 1
        assert record["context"][start - len(cue) - 1 : start] == cue + " "


def test_task_text_never_appears_in_backbone_training_text():
    backbone_text = "\n".join(d.text for d in llm_corpus.backbone_documents(None, None))
    for record in demo_squad_records(40, seed=0):
        assert record["context"] not in backbone_text
    for record in demo_hellaswag_records(40, seed=0):
        assert f"{record['ctx_b']} {record['endings'][record['label']]}" not in backbone_text


def test_build_tasks_writes_records_splits_and_spec(tmp_path):
    summary = build_tasks("squad", {"n_examples": 50, "test_fraction": 0.3, "cv_folds": 5}, tmp_path, seed=0)
    assert summary["n_test"] == 15 and summary["n_train"] == 35
    spec, records = load_records(tmp_path)  # through datasets.load_dataset("json")
    assert spec.dataset == "squad" and spec.prompt_template == DEMO_SQUAD_TEMPLATE
    assert [r["id"] for r in records] == [r["id"] for r in read_jsonl(tmp_path / "records.jsonl")]
    assert records[0]["answers"]["text"] == read_jsonl(tmp_path / "records.jsonl")[0]["answers"]["text"]
    examples = pd.read_parquet(tmp_path / "examples.parquet")
    assert list(examples["id"]) == [r["id"] for r in records]
    assert (examples["split"] == "test").sum() == 15
    assert sorted(np.bincount(examples["fold"])) == [10] * 5
    again = tmp_path / "again"
    build_tasks("squad", {"n_examples": 50}, again, seed=0)
    assert (again / "records.jsonl").read_bytes() == (tmp_path / "records.jsonl").read_bytes()
    assert pd.read_parquet(again / "examples.parquet").equals(examples)


def test_build_tasks_rejects_bad_input_with_one_line(tmp_path):
    with pytest.raises(InputError, match="unknown"):
        build_tasks("triviaqa", {}, tmp_path, 0)
    with pytest.raises(InputError, match="unknown key"):
        build_tasks("squad", {"n_exampels": 10}, tmp_path, 0)
    with pytest.raises(InputError, match="lower n_examples"):
        build_tasks("hellaswag", {"n_examples": 100_000}, tmp_path, 0)
    with pytest.raises(InputError, match="task.json"):
        load_records(tmp_path / "nowhere")


def test_squad_scores_follow_the_official_normalization():
    assert squad_scores("The Cat!", ("cat",)) == (1.0, 1.0)
    exact, f1 = squad_scores("black cat sat", ("the black cat",))
    assert exact == 0.0 and f1 == pytest.approx(0.8)
    assert squad_scores("dog", ("cat", "a dog")) == (1.0, 1.0)
    assert squad_scores("", ("cat",)) == (0.0, 0.0)


def test_hellaswag_evaluation_picks_the_best_length_normalized_ending(tiny, tmp_path):
    backbone, hf = tiny
    build_tasks("hellaswag", {"n_examples": 12}, tmp_path, seed=0)
    records = read_jsonl(tmp_path / "records.jsonl")
    best = []
    for record in records:  # reference: the Hugging Face model, ids built by hand
        prompt = [backbone.bos_id] + backbone.tokenizer(record["ctx"], add_special_tokens=False)["input_ids"]
        scores = []
        for ending in record["endings"]:
            cont = backbone.tokenizer(" " + ending, add_special_tokens=False)["input_ids"]
            ids = torch.tensor([prompt + cont])
            with torch.no_grad():
                logp = torch.log_softmax(hf(input_ids=ids).logits[0, :-1], dim=-1)
            scores.append(logp[torch.arange(len(prompt) - 1, ids.shape[1] - 1), ids[0, len(prompt) :]].mean().item())
        best.append(int(np.argmax(scores)))
    # planted labels: right on even examples, wrong on odd ones
    for i, record in enumerate(records):
        record["label"] = best[i] if i % 2 == 0 else (best[i] + 1) % 4
    (tmp_path / "records.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))

    table = evaluate(backbone, tmp_path, {"batch_size": 5}, seed=0)
    assert list(table["id"]) == [r["id"] for r in records]
    assert list(table["chosen"]) == best
    assert list(table["correct"]) == [1.0 - (i % 2) for i in range(12)]
    assert np.array_equal(table["error"], 1.0 - table["correct"])
    cheap = table.filter(like="cheap__")
    assert {"cheap__prompt_tokens", "cheap__prompt_perplexity", "cheap__type_token_ratio", "cheap__ending_tokens_spread"} <= set(cheap)
    assert np.isfinite(cheap.to_numpy()).all()
    assert table["cheap__prompt_words"].tolist() == [float(len(r["ctx"].split())) for r in records]


def test_squad_evaluation_scores_greedy_generation(tiny, tmp_path):
    backbone, hf = tiny
    build_tasks("squad", {"n_examples": 10, "answer_stop": ["\n"]}, tmp_path, seed=0)
    records = read_jsonl(tmp_path / "records.jsonl")
    for i, record in enumerate(records):
        prompt = DEMO_SQUAD_TEMPLATE.format(context=record["context"], question=record["question"])
        ids = torch.tensor([[backbone.bos_id] + backbone.tokenizer(prompt, add_special_tokens=False)["input_ids"]])
        with torch.no_grad():
            out = hf.generate(ids, max_new_tokens=4, do_sample=False, pad_token_id=backbone.tokenizer.pad_token_id)
        greedy = backbone.tokenizer.decode(out[0, ids.shape[1] :], skip_special_tokens=True).split("\n")[0].strip()
        record["answers"]["text"] = [greedy if i % 2 == 0 else "zebra quagga"]
    (tmp_path / "records.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))

    table = evaluate(backbone, tmp_path, {"batch_size": 4, "max_new_tokens": 4}, seed=0)
    assert list(table["exact_match"]) == [1.0 - (i % 2) for i in range(10)]
    assert list(table["correct"]) == list(table["exact_match"])
    assert (table["f1"] >= table["exact_match"]).all()
    assert {"cheap__question_context_overlap", "cheap__context_words", "cheap__prompt_perplexity"} <= set(table)


def test_a_single_class_dataset_fails_with_one_line():
    with pytest.raises(InputError, match="single class"):
        check_both_classes(np.ones(30), "llm evaluate squad")
    check_both_classes(np.array([0.0, 1.0, 1.0]), "ok")


def test_long_prompts_and_answers_are_cut_to_the_model_context(tmp_path):
    backbone = llm_backbone.load_backbone(make_tiny_model(tmp_path / "short", n_ctx=32), device="cpu")
    text = "The assert statement raises AssertionError when the condition is false. " * 4
    answer = encode_continuation(backbone, text)
    assert len(answer) == 16 and answer == backbone.encode(text)[:16]
    prompt = encode_prompt(backbone, text, reserve=len(answer))
    assert len(prompt) + len(answer) == 32
    assert prompt[0] == backbone.bos_id and prompt[1:] == backbone.encode(text)[-15:]  # the end of the prompt is kept
    with pytest.raises(InputError, match="does not fit"):
        encode_prompt(backbone, text, reserve=40)


SQUAD_CHEAP_FEATURES = {  # prompt-only: text statistics, the model's view of the prompt, context/question sizes
    "prompt_chars", "prompt_words", "type_token_ratio", "mean_word_length", "digit_fraction", "punct_fraction",
    "uppercase_fraction", "sentences", "prompt_tokens", "prompt_mean_nll", "prompt_perplexity", "prompt_max_nll",
    "prompt_fills_context", "context_words", "context_tokens", "question_words", "question_tokens",
    "question_context_overlap",
}  # fmt: skip


def test_squad_cheap_features_never_see_the_gold_answer(tiny, tmp_path):
    """The SQuAD label can be the gold answer's perplexity: no cheap feature may depend on the
    gold answer. By name (the cheap columns are exactly the prompt-only ones) and by planting:
    the same prompts with other gold answers give the same cheap table but other perplexities."""
    backbone, _ = tiny
    build_tasks("squad", {"n_examples": 8}, tmp_path / "a", seed=0)
    records = read_jsonl(tmp_path / "a" / "records.jsonl")
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "task.json").write_text((tmp_path / "a" / "task.json").read_text())
    other = [{**r, "answers": {"text": ["zebra quagga okapi" + " tapir" * i], "answer_start": [0]}} for i, r in enumerate(records)]
    (tmp_path / "b" / "records.jsonl").write_text("".join(json.dumps(r) + "\n" for r in other))
    params = {"batch_size": 4, "max_new_tokens": 4, "squad_error": "gold_answer_perplexity"}
    first, second = (evaluate(backbone, tmp_path / name, params, seed=0) for name in ("a", "b"))
    cheap = [c for c in first.columns if c.startswith("cheap__")]
    assert {c.removeprefix("cheap__") for c in cheap} == SQUAD_CHEAP_FEATURES
    assert not [c for c in cheap if "gold" in c or "answer" in c]
    pd.testing.assert_frame_equal(first[cheap], second[cheap])
    # the label itself does move with the gold answer, and is the error
    assert not np.allclose(first["gold_answer_perplexity"], second["gold_answer_perplexity"])
    assert np.array_equal(first["error"], first["gold_answer_perplexity"])
    with pytest.raises(InputError, match="squad_error"):
        evaluate(backbone, tmp_path / "a", {**params, "squad_error": "f1"}, seed=0)
