"""A Hugging Face cache laid out as a cluster's login node has it after downloading.

What a user does there (README, "Running the original study"): ``hf download <model>`` for
every model, and one online ``datasets.load_dataset(<name>)`` per dataset. That leaves

- ``$HF_HOME/hub/models--<org>--<name>/``: ``refs/main`` (the commit hash), ``blobs/`` and
  ``snapshots/<commit>/<file>`` symlinks into the blobs (huggingface_hub's cache layout);
- ``$HF_HOME/hub/datasets--<org>--<name>/`` likewise, with the dataset card and its parquet files;
- ``$HF_HOME/datasets/<org>___<name>/<config>/<version>/<commit>/``: ``dataset_info.json`` and
  ``<name>-<split>.arrow``, the prepared Arrow files. With ``HF_HUB_OFFLINE=1`` only these are
  read back (``datasets.load`` falls back to ``CachedDatasetModuleFactory`` and the ``cache``
  packaged builder, which globs ``<org>___<name>/*/*/*``); a bare hub snapshot of parquet
  files is not enough.

:func:`build_hf_home` writes that layout with the **real** ``config.json`` of each model (random
weights, saved fp16 as the Pythia checkpoints are), a byte-level BPE tokenizer in the real
file formats (trained here on text that ships with Python), and a few hundred rows in the
real schemas and split names of each dataset. The prepared dataset cache is written by the
``datasets`` library itself: the same packaged parquet builder, config, version and hash an
online ``load_dataset`` of the hub repository uses, pointed at the local snapshot instead of
``hf://``. Nothing here touches the network.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import tempfile
from pathlib import Path
from typing import Any

#: The published config.json files (EleutherAI/pythia-410m and -160m, amazon/chronos-t5-small and -mini).
PYTHIA_410M_CONFIG: dict[str, Any] = {
    "architectures": ["GPTNeoXForCausalLM"],
    "bos_token_id": 0,
    "eos_token_id": 0,
    "hidden_act": "gelu",
    "hidden_size": 1024,
    "initializer_range": 0.02,
    "intermediate_size": 4096,
    "layer_norm_eps": 1e-05,
    "max_position_embeddings": 2048,
    "model_type": "gpt_neox",
    "num_attention_heads": 16,
    "num_hidden_layers": 24,
    "rotary_emb_base": 10000,
    "rotary_pct": 0.25,
    "tie_word_embeddings": False,
    "torch_dtype": "float16",
    "transformers_version": "4.24.0",
    "use_cache": True,
    "use_parallel_residual": True,
    "vocab_size": 50304,
}
PYTHIA_160M_CONFIG: dict[str, Any] = {**PYTHIA_410M_CONFIG, "hidden_size": 768, "intermediate_size": 3072,
                                      "num_attention_heads": 12, "num_hidden_layers": 12}  # fmt: skip

CHRONOS_CONFIG_BLOCK: dict[str, Any] = {
    "tokenizer_class": "MeanScaleUniformBins",
    "tokenizer_kwargs": {"low_limit": -15.0, "high_limit": 15.0},
    "n_tokens": 4096,
    "n_special_tokens": 2,
    "pad_token_id": 0,
    "eos_token_id": 1,
    "use_eos_token": True,
    "model_type": "seq2seq",
    "context_length": 512,
    "prediction_length": 64,
    "num_samples": 20,
    "temperature": 1.0,
    "top_k": 50,
    "top_p": 1.0,
}
CHRONOS_T5_SMALL_CONFIG: dict[str, Any] = {
    "architectures": ["T5ForConditionalGeneration"],
    "d_ff": 2048,
    "d_kv": 64,
    "d_model": 512,
    "decoder_start_token_id": 0,
    "dense_act_fn": "relu",
    "dropout_rate": 0.1,
    "eos_token_id": 1,
    "feed_forward_proj": "relu",
    "initializer_factor": 0.05,
    "is_encoder_decoder": True,
    "is_gated_act": False,
    "layer_norm_epsilon": 1e-6,
    "model_type": "t5",
    "n_positions": 512,
    "num_decoder_layers": 6,
    "num_heads": 8,
    "num_layers": 6,
    "pad_token_id": 0,
    "relative_attention_max_distance": 128,
    "relative_attention_num_buckets": 32,
    "torch_dtype": "float32",
    "transformers_version": "4.31.0",
    "use_cache": True,
    "vocab_size": 4096,
    "chronos_config": CHRONOS_CONFIG_BLOCK,
}
CHRONOS_T5_MINI_CONFIG: dict[str, Any] = {**CHRONOS_T5_SMALL_CONFIG, "d_ff": 1536, "d_model": 384,
                                          "num_decoder_layers": 4, "num_layers": 4}  # fmt: skip
CHRONOS_GENERATION_CONFIG = {"_from_model_config": True, "decoder_start_token_id": 0, "eos_token_id": 1,
                             "pad_token_id": 0, "transformers_version": "4.31.0"}  # fmt: skip

MODELS: dict[str, dict[str, Any]] = {
    "EleutherAI/pythia-410m": PYTHIA_410M_CONFIG,
    "EleutherAI/pythia-160m": PYTHIA_160M_CONFIG,
    "amazon/chronos-t5-small": CHRONOS_T5_SMALL_CONFIG,
    "amazon/chronos-t5-mini": CHRONOS_T5_MINI_CONFIG,
}

#: Hub repository -> (config name in its dataset card, {split: rows}). Config names as on the hub.
DATASETS: dict[str, tuple[str, dict[str, int]]] = {
    "Rowan/hellaswag": ("default", {"train": 200, "validation": 300, "test": 100}),
    "rajpurkar/squad": ("plain_text", {"train": 200, "validation": 300}),
    "NeelNanda/pile-10k": ("default", {"train": 200}),
}

TOKENIZER_VOCAB = 4096
EOS_TOKEN, PAD_TOKEN = "<|endoftext|>", "<|padding|>"


def commit_hash(repo_id: str) -> str:
    """A fixed 40-hex "commit" per repository (stands in for the hub's revision)."""
    return hashlib.sha1(f"sae-difficulty fixture {repo_id}".encode()).hexdigest()


def offline_env(hf_home: Path) -> dict[str, str]:
    """The environment a cluster job runs with: the cache, and every library told it is offline."""
    return {"HF_HOME": str(hf_home), "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1",
            "HF_HUB_DISABLE_TELEMETRY": "1"}  # fmt: skip


# ----------------------------------------------------------------------------- the hub cache layout


def _repo_folder(hf_home: Path, repo_type: str, repo_id: str) -> Path:
    return hf_home / "hub" / f"{repo_type}s--{repo_id.replace('/', '--')}"


def _put_snapshot(hf_home: Path, repo_type: str, repo_id: str, files: Path) -> Path:
    """Move every file under ``files`` into the repository's blobs and link it from
    ``snapshots/<commit>/`` (relative symlinks, as huggingface_hub writes them); ``refs/main``
    holds the commit. Returns the snapshot folder."""
    folder = _repo_folder(hf_home, repo_type, repo_id)
    revision = commit_hash(repo_id)
    snapshot = folder / "snapshots" / revision
    (folder / "blobs").mkdir(parents=True, exist_ok=True)
    (folder / "refs").mkdir(exist_ok=True)
    (folder / "refs" / "main").write_text(revision)
    for source in sorted(p for p in files.rglob("*") if p.is_file()):
        digest = hashlib.sha256()
        with open(source, "rb") as handle:
            for chunk in iter(lambda: handle.read(1 << 20), b""):
                digest.update(chunk)
        blob = folder / "blobs" / digest.hexdigest()
        if not blob.exists():
            shutil.move(str(source), blob)
        link = snapshot / source.relative_to(files)
        link.parent.mkdir(parents=True, exist_ok=True)
        link.symlink_to(os.path.relpath(blob, link.parent))
    return snapshot


def _pydoc_text() -> str:
    from pydoc_data.topics import topics

    return "\n\n".join(topics[key] for key in sorted(topics))


def _sentences(limit: int | None = None) -> list[str]:
    """Prose sentences of pydoc_data.topics (Python's own help text): 6 to 16 words each
    (short prompts keep the CPU forward passes of the route test small)."""
    from pydoc_data.topics import topics

    found: list[str] = []
    for key in sorted(topics):
        text = re.sub(r"\s+", " ", topics[key])
        for sentence in re.split(r"(?<=[.!?])\s+", text):
            words = sentence.split()
            if 6 <= len(words) <= 16 and sentence[:1].isupper() and not re.search(r"[{}<>|=*]", sentence):
                found.append(sentence)
    return found[:limit] if limit else found


def pythia_tokenizer():
    """A byte-level BPE in the GPT-NeoX tokenizer's formats: ``<|endoftext|>`` (id 0) as BOS, EOS
    and UNK, ``<|padding|>`` (id 1), NFC normalizer, byte-level pre-tokenizer and decoder."""
    from tokenizers import (
        Tokenizer,
        decoders,
        models,
        normalizers,
        pre_tokenizers,
        processors,
        trainers,
    )
    from transformers import PreTrainedTokenizerFast

    tokenizer = Tokenizer(models.BPE())
    tokenizer.normalizer = normalizers.NFC()
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.post_processor = processors.ByteLevel(trim_offsets=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=TOKENIZER_VOCAB, special_tokens=[EOS_TOKEN, PAD_TOKEN],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)  # fmt: skip
    tokenizer.train_from_iterator([_pydoc_text()], trainer=trainer)
    return PreTrainedTokenizerFast(tokenizer_object=tokenizer, bos_token=EOS_TOKEN, eos_token=EOS_TOKEN, unk_token=EOS_TOKEN)


def _write_pythia(config: dict[str, Any], out: Path, seed: int) -> None:
    import torch
    from transformers import GPTNeoXConfig, GPTNeoXForCausalLM

    torch.manual_seed(seed)
    model = GPTNeoXForCausalLM(GPTNeoXConfig(**{k: v for k, v in config.items() if k != "transformers_version"}))
    model.half().save_pretrained(out, safe_serialization=True)
    del model
    tokenizer = pythia_tokenizer()
    tokenizer.save_pretrained(out)
    # The published files: config.json as released, and the GPT-NeoX tokenizer's own config.
    (out / "config.json").write_text(json.dumps(config, indent=2) + "\n")
    (out / "tokenizer_config.json").write_text(json.dumps({
        "add_prefix_space": False, "bos_token": EOS_TOKEN, "eos_token": EOS_TOKEN, "unk_token": EOS_TOKEN,
        "name_or_path": "EleutherAI/gpt-neox-20b", "tokenizer_class": "GPTNeoXTokenizer"}, indent=2) + "\n")  # fmt: skip
    (out / "special_tokens_map.json").write_text(json.dumps({"bos_token": EOS_TOKEN, "eos_token": EOS_TOKEN, "unk_token": EOS_TOKEN}, indent=2) + "\n")
    (out / "generation_config.json").unlink(missing_ok=True)


def _write_chronos(config: dict[str, Any], out: Path, seed: int) -> None:
    import torch
    from transformers import T5Config, T5ForConditionalGeneration

    torch.manual_seed(seed)
    model = T5ForConditionalGeneration(T5Config(**{k: v for k, v in config.items() if k != "transformers_version"}))
    model.save_pretrained(out, safe_serialization=True)
    (out / "config.json").write_text(json.dumps(config, indent=2) + "\n")
    (out / "generation_config.json").write_text(json.dumps(CHRONOS_GENERATION_CONFIG, indent=2) + "\n")


def write_model(hf_home: Path, repo_id: str, seed: int = 0) -> Path:
    """Random weights with the real config of ``repo_id``, as ``hf download`` leaves them."""
    config = MODELS[repo_id]
    with tempfile.TemporaryDirectory(dir=hf_home) as staging:
        files = Path(staging)
        (_write_pythia if config["model_type"] == "gpt_neox" else _write_chronos)(config, files, seed)
        (files / "README.md").write_text(f"# {repo_id}\n\nRandom weights with the published config (test fixture).\n")
        return _put_snapshot(hf_home, "model", repo_id, files)


# ----------------------------------------------------------------------------- datasets


def hellaswag_rows(split: str, n: int, sentences: list[str], offset: int) -> list[dict[str, Any]]:
    """HellaSwag's schema: the context is a sentence and the start of the next; the gold ending is
    the rest of it, three distractors are the rests of other sentences. Test labels are empty."""
    rows = []
    for i in range(n):
        first, second = sentences[(offset + 2 * i) % len(sentences)], sentences[(offset + 2 * i + 1) % len(sentences)]
        words = second.split()
        cut = max(2, len(words) // 3)
        gold = " ".join(words[cut:])
        others = [" ".join(s.split()[max(2, len(s.split()) // 3):]) for s in
                  (sentences[(offset + 7 * i + 3 + j * 11) % len(sentences)] for j in range(3))]  # fmt: skip
        label = (i * 7 + 3) % 4
        endings = others[:label] + [gold] + others[label:]
        activity = re.sub(r"[^A-Za-z ]", "", first.split(".")[0]).split()[:2]
        rows.append({
            "ind": offset + i, "activity_label": " ".join(activity).title() or "Python", "ctx_a": first,
            "ctx_b": " ".join(words[:cut]).lower(), "ctx": f"{first} {' '.join(words[:cut]).lower()}", "endings": endings,
            "source_id": f"pydoc~v_{offset + i:05d}", "split": {"validation": "val"}.get(split, split),
            "split_type": "indomain" if i % 2 else "zeroshot", "label": "" if split == "test" else str(label),
        })  # fmt: skip
    return rows


def squad_rows(split: str, n: int, sentences: list[str], offset: int) -> list[dict[str, Any]]:
    """SQuAD v1.1's schema: a two-sentence context, a question about one of its words, the
    answer span (text and character start) inside the context."""
    rows = []
    for i in range(n):
        context_sentences = [sentences[(offset + 2 * i + j) % len(sentences)] for j in range(2)]
        context = " ".join(context_sentences)
        target = context_sentences[i % 2]
        words = [w for w in re.findall(r"[A-Za-z][A-Za-z_]{3,}", target)]
        answer = words[len(words) // 2] if words else target.split()[0]
        question = target.replace(answer, "what", 1).rstrip(".!?") + "?"
        start = context.index(target) + target.index(answer)
        rows.append({"id": hashlib.md5(f"{split}{i}".encode()).hexdigest()[:24], "title": f"Python_{(offset + i) // 5}",
                     "context": context, "question": question, "answers": {"text": [answer], "answer_start": [start]}})  # fmt: skip
    return rows


def pile_rows(n: int) -> list[dict[str, Any]]:
    from pydoc_data.topics import topics

    keys = sorted(topics)
    return [{"text": topics[keys[i % len(keys)]], "meta": {"pile_set_name": "Pydoc"}} for i in range(n)]


def _features(repo_id: str):
    import datasets

    if repo_id == "Rowan/hellaswag":
        return datasets.Features({
            "ind": datasets.Value("int32"), "activity_label": datasets.Value("string"), "ctx_a": datasets.Value("string"),
            "ctx_b": datasets.Value("string"), "ctx": datasets.Value("string"), "endings": datasets.List(datasets.Value("string")),
            "source_id": datasets.Value("string"), "split": datasets.Value("string"), "split_type": datasets.Value("string"),
            "label": datasets.Value("string")})  # fmt: skip
    if repo_id == "rajpurkar/squad":
        return datasets.Features({
            "id": datasets.Value("string"), "title": datasets.Value("string"), "context": datasets.Value("string"),
            "question": datasets.Value("string"),
            "answers": {"text": datasets.List(datasets.Value("string")), "answer_start": datasets.List(datasets.Value("int32"))}})  # fmt: skip
    return datasets.Features({"text": datasets.Value("string"), "meta": {"pile_set_name": datasets.Value("string")}})


def _rows(repo_id: str, split: str, n: int, sentences: list[str]) -> list[dict[str, Any]]:
    offset = {"train": 0, "validation": 5000, "test": 9000}[split]
    if repo_id == "Rowan/hellaswag":
        return hellaswag_rows(split, n, sentences, offset)
    if repo_id == "rajpurkar/squad":
        return squad_rows(split, n, sentences, offset)
    return pile_rows(n)


def write_dataset(hf_home: Path, repo_id: str, sentences: list[str]) -> Path:
    """The hub snapshot (dataset card + parquet shards) and the prepared Arrow cache that one
    online ``load_dataset(repo_id)`` leaves; returns the prepared cache directory."""
    import datasets
    from datasets.load import (
        BuilderConfigsParameters,
        DatasetModule,
        create_builder_configs_from_metadata_configs,
        get_dataset_builder_class,
    )
    from datasets.naming import camelcase_to_snakecase
    from datasets.packaged_modules import _PACKAGED_DATASETS_MODULES
    from datasets.utils.metadata import MetadataConfigs
    from huggingface_hub import DatasetCard

    config_name, splits = DATASETS[repo_id]
    features = _features(repo_id)
    with tempfile.TemporaryDirectory(dir=hf_home) as staging:
        files = Path(staging)
        folder = files / (config_name if config_name != "default" else "data")
        folder.mkdir()
        info = datasets.DatasetInfo(features=features, config_name=config_name)
        for split, n in splits.items():
            table = datasets.Dataset.from_list(_rows(repo_id, split, n, sentences), features=features)
            table.to_parquet(str(folder / f"{split}-00000-of-00001.parquet"))
        yaml_configs = "\n".join(f"  - split: {split}\n    path: {folder.name}/{split}-*" for split in splits)
        (files / "README.md").write_text(
            f"---\nconfigs:\n- config_name: {config_name}\n  data_files:\n{yaml_configs}\n---\n\n# {repo_id}\n\n"
            "Rows in the published schema, generated from pydoc_data.topics (test fixture).\n"
        )
        snapshot = _put_snapshot(hf_home, "dataset", repo_id, files)

    # What HubDatasetModuleFactory.get_module and load_dataset_builder do online, with the
    # snapshot as base path instead of hf://datasets/<repo>@<commit>.
    card = DatasetCard.load(snapshot / "README.md").data
    metadata_configs = MetadataConfigs.from_dataset_card_data(card)
    module_path = _PACKAGED_DATASETS_MODULES["parquet"][0]
    builder_configs, default_config = create_builder_configs_from_metadata_configs(
        module_path, metadata_configs, base_path=str(snapshot), default_builder_kwargs={}
    )
    dataset_name = camelcase_to_snakecase(repo_id.split("/")[-1])
    module = DatasetModule(
        module_path,
        commit_hash(repo_id),
        {"base_path": str(snapshot), "repo_id": repo_id, "dataset_name": dataset_name},
        builder_configs_parameters=BuilderConfigsParameters(
            metadata_configs=metadata_configs, builder_configs=builder_configs, default_config_name=default_config
        ),
    )
    builder_cls = get_dataset_builder_class(module, dataset_name=dataset_name)
    # repo_id is left out of the builder (it insists on hf:// data files); the prepared cache
    # goes where an online load puts it: "<org>___" in front of the builder's own relative dir.
    builder = builder_cls(cache_dir=str(hf_home / "datasets"), config_name=config_name, hash=module.hash, info=info,
                          dataset_name=dataset_name, base_path=str(snapshot))  # fmt: skip
    prepared = hf_home / "datasets" / f"{repo_id.split('/')[0]}___{builder._relative_data_dir()}"
    builder.download_and_prepare(output_dir=str(prepared))
    return prepared


def build_hf_home(hf_home: Path, models: tuple[str, ...] = tuple(MODELS), datasets: tuple[str, ...] = tuple(DATASETS)) -> Path:
    """Write the whole cache under ``hf_home`` (created) and return it."""
    hf_home = Path(hf_home)
    hf_home.mkdir(parents=True, exist_ok=True)
    for i, repo_id in enumerate(models):
        write_model(hf_home, repo_id, seed=i)
    sentences = _sentences()
    for repo_id in datasets:
        write_dataset(hf_home, repo_id, sentences)
    return hf_home


def run_offline(code: str, hf_home: Path, timeout: int = 600) -> Any:
    """Run ``code`` in a fresh interpreter with :func:`offline_env` (the libraries read their
    cache and offline settings at import, as a cluster job does) and return the JSON it prints
    on its last stdout line."""
    import subprocess
    import sys

    env = {**os.environ, **offline_env(hf_home), "PYTHONHASHSEED": "0"}
    result = subprocess.run([sys.executable, "-c", code], check=False, capture_output=True, text=True, env=env, timeout=timeout)
    if result.returncode != 0:
        raise AssertionError(f"offline check failed ({result.returncode}):\n{result.stdout[-3000:]}\n{result.stderr[-5000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])
