"""The hub route without a network: the project's loaders read models and datasets by their hub
names from a Hugging Face cache laid out as ``hf download`` and one online ``load_dataset`` leave
it (tests/hub_cache.py), with every library told it is offline. Each check runs in a fresh
interpreter because the libraries read ``HF_HOME`` and the offline switches at import."""

from __future__ import annotations

import json
import shutil

import pytest
from hub_cache import (
    MODELS,
    PYTHIA_160M_CONFIG,
    PYTHIA_410M_CONFIG,
    commit_hash,
    run_offline,
)

pytestmark = pytest.mark.slow


def test_cache_has_the_login_node_layout(hf_home):
    for repo_id, config in MODELS.items():
        folder = hf_home / "hub" / f"models--{repo_id.replace('/', '--')}"
        revision = (folder / "refs" / "main").read_text()
        assert revision == commit_hash(repo_id) and len(revision) == 40
        snapshot = folder / "snapshots" / revision
        assert (snapshot / "model.safetensors").is_symlink() and (snapshot / "model.safetensors").resolve().parent == folder / "blobs"
        assert json.loads((snapshot / "config.json").read_text()) == config
    tokenizer_files = {p.name for p in (hf_home / "hub" / "models--EleutherAI--pythia-410m" / "snapshots").glob("*/*")}
    assert {"tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"} <= tokenizer_files
    prepared = hf_home / "datasets" / "Rowan___hellaswag" / "default" / "0.0.0" / commit_hash("Rowan/hellaswag")
    assert {"dataset_info.json", "hellaswag-train.arrow", "hellaswag-validation.arrow", "hellaswag-test.arrow"} <= {
        p.name for p in prepared.iterdir()
    }
    assert (hf_home / "datasets" / "rajpurkar___squad" / "plain_text" / "0.0.0" / commit_hash("rajpurkar/squad")).is_dir()


LM_CHECK = """
import json, torch
from transformers import GPTNeoXForCausalLM
from sae_difficulty.modalities.llm.backbone import check_layer, load_backbone
from sae_difficulty.utils.errors import InputError

out = {}
backbone = load_backbone("EleutherAI/pythia-410m", device="cpu")
hf = GPTNeoXForCausalLM.from_pretrained("EleutherAI/pythia-410m", dtype=torch.float32).eval()
text = "The assert statement is a convenient way to insert debugging assertions into a program."
ids = torch.tensor([[backbone.bos_id] + backbone.encode(text)])
with torch.no_grad():
    ours = torch.log_softmax(backbone.model(ids).float(), -1)
    theirs = torch.log_softmax(hf(ids).logits.float(), -1)
out["max_logprob_diff"] = float((ours - theirs).abs().max())
out["logprob_spread"] = float(theirs.std())
out["roundtrip"] = backbone.tokenizer.decode(backbone.encode(text)) == text
out["large"] = {"n_layers": backbone.n_layers, "d_model": backbone.d_model, "bos": backbone.bos_id, "source": backbone.source}
del hf, backbone
small = load_backbone("EleutherAI/pythia-160m", device="cpu")
out["small"] = {"n_layers": small.n_layers, "d_model": small.d_model}
out["last_hook"] = check_layer(small, 11)
try:
    check_layer(small, 12)
except InputError as error:
    out["out_of_range"] = str(error)
print(json.dumps(out))
"""


def test_lm_loader_reads_pythia_by_hub_name_offline(hf_home):
    result = run_offline(LM_CHECK, hf_home)
    # The TransformerLens model is the Hugging Face model on the same cached weights.
    assert result["max_logprob_diff"] < 1e-4 < result["logprob_spread"]
    assert result["roundtrip"]
    # Depth and width come from each checkpoint's config.json, not from a table.
    assert result["large"] == {"n_layers": PYTHIA_410M_CONFIG["num_hidden_layers"], "d_model": PYTHIA_410M_CONFIG["hidden_size"],
                               "bos": 0, "source": "EleutherAI/pythia-410m"}  # fmt: skip
    assert result["small"] == {"n_layers": PYTHIA_160M_CONFIG["num_hidden_layers"], "d_model": PYTHIA_160M_CONFIG["hidden_size"]}
    assert result["last_hook"] == "blocks.11.hook_resid_post"
    assert "EleutherAI/pythia-160m" in result["out_of_range"] and "12 blocks" in result["out_of_range"]


TSFM_CHECK = """
import json, numpy as np, torch
from sae_difficulty.modalities.tsfm.backbone import load_chronos

out = {}
for name in ("amazon/chronos-t5-small", "amazon/chronos-t5-mini"):
    pipeline = load_chronos(name, device="cpu")
    config = pipeline.model.config
    context = torch.tensor(10.0 + np.sin(np.arange(512) * 2 * np.pi / 24), dtype=torch.float32)
    torch.manual_seed(0)
    samples = pipeline.predict(context, prediction_length=24, num_samples=8)
    out[name] = {"encoder_blocks": len(pipeline.model.model.encoder.block), "d_model": pipeline.model.model.config.d_model,
                 "context_length": config.context_length, "n_tokens": config.n_tokens, "shape": list(samples.shape),
                 "finite": bool(torch.isfinite(samples).all()), "spread": float(samples.std())}
print(json.dumps(out))
"""


def test_chronos_loader_reads_chronos_by_hub_name_offline(hf_home):
    result = run_offline(TSFM_CHECK, hf_home)
    small, mini = result["amazon/chronos-t5-small"], result["amazon/chronos-t5-mini"]
    assert (small["encoder_blocks"], small["d_model"], mini["encoder_blocks"], mini["d_model"]) == (6, 512, 4, 384)
    for loaded in (small, mini):
        assert loaded["context_length"] == 512 and loaded["n_tokens"] == 4096
        assert loaded["shape"] == [1, 8, 24] and loaded["finite"] and loaded["spread"] > 0


DATASETS_CHECK = """
import json, datasets
from sae_difficulty.modalities.llm.tasks import _hub_records
from sae_difficulty.utils.errors import InputError

out = {}
hellaswag = _hub_records("hellaswag", "Rowan/hellaswag", "validation", 40, 0)
squad = _hub_records("squad", "rajpurkar/squad", "validation", 40, 0)
out["hellaswag"] = {"n": len(hellaswag), "keys": sorted(hellaswag[0]), "labels": sorted({r["label"] for r in hellaswag}),
                    "endings": sorted({len(r["endings"]) for r in hellaswag}), "ids": len({r["id"] for r in hellaswag})}
out["squad"] = {"n": len(squad), "keys": sorted(squad[0]),
                "spans": all(r["context"][r["answers"]["answer_start"][0]:].startswith(r["answers"]["text"][0]) for r in squad)}
try:
    _hub_records("hellaswag", "Rowan/hellaswag", "test", 40, 0)
except InputError as error:
    out["test_split"] = str(error)
pile = datasets.load_dataset("NeelNanda/pile-10k", split="train")
out["pile"] = {"n": len(pile), "columns": pile.column_names, "chars": sum(len(t) for t in pile["text"])}
print(json.dumps(out))
"""


def test_hub_records_read_the_prepared_datasets_cache_offline(hf_home):
    result = run_offline(DATASETS_CHECK, hf_home)
    hellaswag, squad = result["hellaswag"], result["squad"]
    assert hellaswag["n"] == 40 and hellaswag["ids"] == 40 and hellaswag["endings"] == [4]
    assert set(hellaswag["labels"]) <= {0, 1, 2, 3} and len(hellaswag["labels"]) > 1
    assert {"ctx", "ctx_a", "ctx_b", "endings", "label", "activity_label", "source_id", "split_type"} <= set(hellaswag["keys"])
    assert squad["n"] == 40 and squad["spans"] and {"id", "title", "context", "question", "answers"} <= set(squad["keys"])
    assert "unlabeled" in result["test_split"]  # HellaSwag's test split has empty labels, as on the hub
    assert result["pile"]["n"] == 200 and "text" in result["pile"]["columns"] and result["pile"]["chars"] > 100_000


def test_a_bare_hub_snapshot_of_a_dataset_is_not_enough_offline(hf_home, tmp_path):
    """Without the prepared Arrow cache (only ``hf download --repo-type dataset``), an offline
    ``load_dataset`` fails: the README's warm-up step is needed, and the fixture's prepared
    cache is what the route reads."""
    bare = tmp_path / "hf-bare"
    shutil.copytree(hf_home / "hub" / "datasets--Rowan--hellaswag", bare / "hub" / "datasets--Rowan--hellaswag", symlinks=True)
    code = """
import json, datasets
try:
    datasets.load_dataset("Rowan/hellaswag", split="validation")
    print(json.dumps("loaded"))
except Exception as error:
    print(json.dumps(type(error).__name__))
"""
    assert run_offline(code, bare) == "ConnectionError"
