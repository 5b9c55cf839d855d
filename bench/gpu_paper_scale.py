"""Item 6: the paper-scale LM path on a GPU - extraction and SAE training throughput
against the bare forward pass on the same device.

A GPT-NeoX with Pythia-410M's shape (d_model 1024, 24 layers, 16 heads, d_mlp 4096,
vocabulary 50304, rotary on 25% of each head) is built with random weights by the
project's own config builder (``llm_backbone.gpt_neox_config``), saved in Hugging Face
format with the demo BPE tokenizer, and loaded through the project's loader
(``LanguageModality.load_backbone``: TransformerLens, unprocessed weights) - nothing is
downloaded. Then, on ``cuda`` when available (else CPU), interleaved:

* extraction of SAE training activations at layer 12 (``config/paper.yaml``: 128-token
  windows, 64 per batch) with the project's hot loop (``llm_patching.fill_rows``: the forward
  stopped after the layer, device-to-host copy, chunk-aligned zarr writes) against the bare forward pass on the same windows
  (full model, logits included) and the forward stopped after layer 12;
* task extraction (``LanguageModality.extract`` on 400 demo HellaSwag prompts) against
  the bare forward on the same prompt batches;
* SAE training (``fit_sae``, the paper's TopK spec: expansion 8, k 64, batch 4096,
  lr 2e-4) streamed from the zarr cache just written, against the same trainer fed
  from a tensor already on the device; both also as a fraction of the model's forward
  tokens/s (how fast the SAE consumes what the model produces).

The FLOP bound is a float32 matmul on the same device (TF32 as torch's default allows).

    python bench/gpu_paper_scale.py                      # Pythia-410M shape (needs a GPU to be quick)
    python bench/gpu_paper_scale.py --size reduced       # same code, small shape, runs on a laptop CPU
"""

from __future__ import annotations

import argparse
import shutil
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

import benchlib  # noqa: E402

SIZES = {
    # Pythia-410M (EleutherAI/pythia-410m config.json), SAE and extraction settings of config/paper.yaml.
    "pythia-410m": {
        "model": {"d_model": 1024, "n_layers": 24, "n_heads": 16, "d_mlp": 4096, "context_length": 2048, "rotary_pct": 0.25},
        "vocab_size": 50304,
        "layer": 12,
        "window": 128,
        "batch_size": 64,
        "extract_batches": 24,
        "sae": {"expansion": 8, "k": 64, "batch_size": 4096, "lr": 2e-4, "steps": 150},
        "task_batch_size": 32,
    },
    # The same code at a size a 2-core CPU runs in about a minute.
    "reduced": {
        "model": {"d_model": 128, "n_layers": 4, "n_heads": 4, "d_mlp": 512, "context_length": 256, "rotary_pct": 0.25},
        "vocab_size": 50304,
        "layer": 2,
        "window": 128,
        "batch_size": 8,
        "extract_batches": 6,
        "sae": {"expansion": 8, "k": 16, "batch_size": 1024, "lr": 2e-4, "steps": 30},
        "task_batch_size": 16,
    },
}


def synchronized(fn, device: str):
    """``fn`` followed by a device synchronization, so the timer sees the finished work."""

    def run() -> Any:
        result = fn()
        if device == "cuda":
            torch.cuda.synchronize()
        return result

    return run


def device_matmul_tflops(device: str, seconds: float = 2.0) -> float:
    """Sustained float32 matmul TFLOP/s on ``device`` (all CPU threads on a CPU)."""
    n = 4096 if device == "cuda" else 1024
    a = torch.randn(n, n, device=device)
    b = torch.randn(n, n, device=device)
    run = synchronized(lambda: torch.mm(a, b), device)
    for _ in range(3):
        run()
    best, deadline = 0.0, time.perf_counter() + seconds
    while time.perf_counter() < deadline:
        best = max(best, 2 * n**3 / benchlib.timed(run) / 1e12)
    return best


def build_model(size: dict[str, Any], root: Path, device: str):
    """Random-weight GPT-NeoX of the given shape, saved and loaded through the project's loader."""
    from extraction import demo_tokenizer
    from transformers import GPTNeoXForCausalLM

    from sae_difficulty.modalities.llm.adapter import LanguageModality
    from sae_difficulty.modalities.llm.backbone import BackboneParams, gpt_neox_config

    tokenizer_dir = demo_tokenizer(root, vocab_size=8192)
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tokenizer_dir)
    params = BackboneParams(**size["model"])
    torch.manual_seed(0)
    model = GPTNeoXForCausalLM(gpt_neox_config(params, size["vocab_size"]))
    n_params = int(sum(p.numel() for p in model.parameters()))
    out = root / "model"
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    del model
    started = time.perf_counter()
    backbone = LanguageModality().load_backbone(out, device=device)
    return backbone, n_params, time.perf_counter() - started


def bench_extraction(backbone, size: dict[str, Any], root: Path, device: str, repeats: int) -> tuple[dict[str, Any], Path]:
    """Training-activation extraction (project hot loop) vs the bare forward on the same windows."""
    import zarr
    from extraction import count_flops

    from sae_difficulty.modalities.llm.backbone import check_layer
    from sae_difficulty.modalities.llm.patching import (
        fill_rows,
        row_array,
        text_windows,
    )

    layer = size["layer"]
    hook = check_layer(backbone, layer)
    n_windows = size["batch_size"] * size["extract_batches"]
    windows = text_windows(backbone, "sae", size["window"], seed=0)[:n_windows]
    if len(windows) < n_windows:
        raise SystemExit(f"the demo corpus gives only {len(windows)} windows of {size['window']} tokens")
    rows = n_windows * (size["window"] - 1)
    cache = root / "activations.zarr"
    batches = [windows[s : s + size["batch_size"]].to(device) for s in range(0, n_windows, size["batch_size"])]

    def extract() -> None:
        group = zarr.open_group(str(cache), mode="w", zarr_format=3)
        fill_rows(backbone, hook, layer, windows, row_array(group, "train", rows, backbone.d_model), size["batch_size"], "extract")
        row_array(group, "heldout", 4096, backbone.d_model)[...] = 0.0

    @torch.no_grad()
    def forward() -> None:
        for batch in batches:
            backbone.model(batch)

    @torch.no_grad()
    def forward_to_layer() -> None:
        for batch in batches:
            backbone.model(batch, stop_at_layer=layer + 1)

    variants = {name: synchronized(fn, device) for name, fn in (("extract", extract), ("forward", forward), ("forward_to_layer", forward_to_layer))}
    timing = benchlib.interleaved_times(variants, "forward", repeats)
    flops = {"forward": count_flops(forward), "forward_to_layer": count_flops(forward_to_layer)}
    tokens = n_windows * size["window"]
    result: dict[str, Any] = {
        "windows": n_windows,
        "tokens_per_pass": tokens,
        "rows_written": rows,
        "cache_mb": round(rows * backbone.d_model * 4 / 2**20, 1),
        "flops_per_pass": flops,
    }
    for name, t in timing.items():
        result[name] = {"tokens_per_s": round(tokens / t["median_s"], 1), "median_s": round(t["median_s"], 4)}
    for reference in ("forward", "forward_to_layer"):
        result[f"ratio_extract_vs_{reference}"] = round(1 / timing["extract"]["time_ratio"] * timing[reference]["time_ratio"], 3)
    result["forward"]["tflop_s"] = round(flops["forward"] / timing["forward"]["median_s"] / 1e12, 3)
    result["extract"]["tflop_s"] = round(flops["forward_to_layer"] / timing["extract"]["median_s"] / 1e12, 3)
    return result, cache


def bench_task_extraction(backbone, size: dict[str, Any], root: Path, device: str, repeats: int) -> dict[str, Any]:
    """``LanguageModality.extract`` on demo HellaSwag prompts vs the bare forward on the same batches."""
    from sae_difficulty.modalities.llm.adapter import LanguageModality
    from sae_difficulty.modalities.llm.patching import _pad_id
    from sae_difficulty.modalities.llm.prompts import encode_prompt, right_pad
    from sae_difficulty.modalities.llm.tasks import load_examples

    modality = LanguageModality()
    tasks_dir = root / "tasks"
    modality.build_tasks("hellaswag", {"n_examples": 400}, tasks_dir, seed=0)
    _, examples = load_examples(tasks_dir)
    prompts = [encode_prompt(backbone, ex.prompt) for ex in examples]
    batch_size = size["task_batch_size"]
    batches = [right_pad(prompts[s : s + batch_size], _pad_id(backbone)).to(device) for s in range(0, len(prompts), batch_size)]

    def extract() -> None:
        modality.extract(backbone, tasks_dir, size["layer"], root / "tasks.zarr", {"batch_size": batch_size})

    @torch.no_grad()
    def forward() -> None:
        for batch in batches:
            backbone.model(batch)

    timing = benchlib.interleaved_times({"extract": synchronized(extract, device), "forward": synchronized(forward, device)}, "forward", repeats)
    tokens = sum(len(p) - 1 for p in prompts)
    return {
        "examples": len(prompts),
        "tokens": tokens,
        "extract_tokens_per_s": round(tokens / timing["extract"]["median_s"], 1),
        "forward_tokens_per_s": round(tokens / timing["forward"]["median_s"], 1),
        "ratio_extract_vs_forward": round(1 / timing["extract"]["time_ratio"], 3),
    }


def bench_sae(cache: Path, size: dict[str, Any], device: str, repeats: int, forward_tokens_per_s: float) -> dict[str, Any]:
    """fit_sae streamed from the zarr cache vs fed from a tensor already on the device."""
    from sae_training import memory_batches

    from sae_difficulty.saes.cache import open_training_cache, stream_batches
    from sae_difficulty.saes.training import SAETrainingSpec, fit_sae
    from sae_difficulty.stages.sae import buffer_batches

    sae = size["sae"]
    train = open_training_cache(cache).train
    d = int(train.shape[1])
    batches = buffer_batches(train.chunks[0], sae["batch_size"])
    spec = SAETrainingSpec(
        architecture="topk",
        expansion=sae["expansion"],
        k=sae["k"],
        lr=sae["lr"],
        batch_size=sae["batch_size"],
        training_tokens=sae["steps"] * sae["batch_size"],
        max_batches_in_memory=batches,
    )
    on_device = torch.from_numpy(np.asarray(train[...])).to(device)

    def stream() -> None:
        fit_sae(stream_batches(train, sae["batch_size"], seed=0, max_batches_in_memory=batches), spec, d, device=device)

    def memory() -> None:
        fit_sae(memory_batches(on_device, sae["batch_size"], seed=0), spec, d, device=device)

    timing = benchlib.interleaved_times({"stream": synchronized(stream, device), "memory": synchronized(memory, device)}, "memory", repeats)
    tokens = spec.n_steps * spec.batch_size
    stream_rate = tokens / timing["stream"]["median_s"]
    return {
        "spec": {k: sae[k] for k in ("expansion", "k", "batch_size", "lr")},
        "d_in": d,
        "d_sae": spec.d_sae(d),
        "steps": spec.n_steps,
        "cache_rows": int(train.shape[0]),
        "stream_tokens_per_s": round(stream_rate, 1),
        "memory_tokens_per_s": round(tokens / timing["memory"]["median_s"], 1),
        "ratio_stream_vs_memory": round(1 / timing["stream"]["time_ratio"], 3),
        "stream_vs_model_forward": round(stream_rate / forward_tokens_per_s, 3),
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", choices=sorted(SIZES), default="pythia-410m")
    parser.add_argument("--device", default=None, help="cuda or cpu (default: cuda when available)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/sae-bench/gpu_paper_scale"))
    args = parser.parse_args(argv)
    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    size = SIZES[args.size]
    load_before = benchlib.loadavg()
    if args.workdir.exists():
        shutil.rmtree(args.workdir)
    args.workdir.mkdir(parents=True)
    backbone, n_params, load_s = build_model(size, args.workdir, device)
    print(f"{args.size}: {n_params / 1e6:.1f}M parameters on {device}, loaded in {load_s:.1f} s", file=sys.stderr)
    matmul = device_matmul_tflops(device)
    extraction, cache = bench_extraction(backbone, size, args.workdir, device, args.repeats)
    print(f"extraction: {extraction}", file=sys.stderr)
    tasks = bench_task_extraction(backbone, size, args.workdir, device, args.repeats)
    print(f"task extraction: {tasks}", file=sys.stderr)
    sae = bench_sae(cache, size, device, args.repeats, extraction["forward"]["tokens_per_s"])
    print(f"sae: {sae}", file=sys.stderr)
    name = "gpu_paper_scale" if device == "cuda" and args.size == "pythia-410m" else f"gpu_paper_scale_{args.size}_{device}"
    benchlib.write_result(
        name,
        {
            "command": f"python bench/gpu_paper_scale.py --size {args.size}" + (f" --device {args.device}" if args.device else ""),
            "device": device,
            "size": args.size,
            "shape": size,
            "parameters": n_params,
            "load_s": round(load_s, 2),
            "matmul_tflop_s": round(matmul, 3),
            "extraction": extraction,
            "extraction_fraction_of_matmul": round(extraction["extract"]["tflop_s"] / matmul, 4),
            "forward_fraction_of_matmul": round(extraction["forward"]["tflop_s"] / matmul, 4),
            "task_extraction": tasks,
            "sae_training": sae,
        },
        load_before,
    )
    shutil.rmtree(args.workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
