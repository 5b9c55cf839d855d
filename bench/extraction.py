"""Item 1: extraction throughput of the adapters on the demo backbones.

For each backbone shape of the default config (``small`` and ``large`` of
``config/config.yaml`` over the schema's defaults) a model with random weights is built with the project's own builder, saved
in Hugging Face format and loaded through the project's loader (weights do not change
the cost of a forward pass). Then, interleaved in one process on one thread (every
workflow job pins BLAS to one thread):

* ``extract``: the adapter's ``extract`` on the demo tasks into a fresh zarr cache
  (reading the task files, the forward, pooling and zarr writes included);
* ``forward``: the model's bare forward pass on the same batches (LM: the
  ``HookedTransformer`` forward on the right-padded prompt batches ``extract`` runs,
  i.e. length-sorted inside windows by ``llm_patching.length_sorted_batches``,
  unembedding included; TSFM: the Chronos tokenizer and the T5 encoder on the same
  windows, which is all the extraction needs), nothing kept;
* LM only, ``forward_to_layer``: the forward on those batches stopped after the
  extracted block (``stop_at_layer``), i.e. the compute extraction cannot avoid: the
  ratio against it is the cost of everything else (host copies, pooling, zarr writes);
* LM only, ``forward_tasks_order``: the full forward on batches taken in tasks order
  (no length sorting, more padding), the reference of earlier versions of this script.

Ratios are throughput ratios (extract / reference; target >= 0.8 against ``forward``).
The FLOP fraction is the extraction's achieved FLOP rate (FLOPs of the forward it runs,
counted by ``torch.utils.flop_counter``) over the FLOP rate of a plain single-thread
float32 matmul on this CPU (the higher of the rates measured before and after the run).

    python bench/extraction.py                 # both modalities
    python bench/extraction.py --modality tsfm
"""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path
from typing import Any

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

import benchlib  # noqa: E402

LAYER = 1


def count_flops(fn) -> int:
    """FLOPs torch dispatches while running ``fn`` (matmuls, convolutions, attention)."""
    from torch.utils.flop_counter import FlopCounterMode

    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        fn()
    return int(counter.get_total_flops())


def summarize(name: str, timing: dict[str, Any], units: dict[str, int], flops: dict[str, int], matmul: float) -> dict[str, Any]:
    """Throughputs per unit (tokens, windows, examples) of every variant; for every
    extraction variant (names starting with ``extract``) its throughput ratio against
    every reference (the others), as the median of per-round ratios (robust to drift);
    and FLOP rates as a fraction of the matmul bound."""
    out: dict[str, Any] = {"units": units, "flops_per_pass": flops}
    subjects = [v for v in timing if v.startswith("extract")]
    references = [v for v in timing if not v.startswith("extract")]
    for variant, t in timing.items():
        out[variant] = {f"{unit}_per_s": round(count / t["median_s"], 1) for unit, count in units.items()}
        out[variant]["median_s"] = round(t["median_s"], 4)
    for subject in subjects:
        for reference in references:
            per_round = [r / e for r, e in zip(timing[reference]["seconds"], timing[subject]["seconds"])]
            out[f"ratio_{subject}_vs_{reference}"] = round(float(np.median(per_round)), 3)
    for variant, count in flops.items():
        rate = count / timing[variant]["median_s"] / 1e9
        out[variant]["gflop_s"] = round(rate, 3)
        out[variant]["fraction_of_matmul"] = round(rate / matmul, 4)
    ratios = {k: v for k, v in out.items() if k.startswith("ratio_")}
    print(f"{name}: {ratios}", file=sys.stderr)
    return out


# --------------------------------------------------------------------------- TSFM


def demo_backbone_params(modality: str, size: str) -> dict[str, Any]:
    """The default config's backbone ``size`` (config/config.yaml over the schema's defaults)."""
    import yaml

    from sae_difficulty.pipeline.config import SCHEMA_PATH

    schema = yaml.safe_load(Path(SCHEMA_PATH).read_text())
    params = dict(schema["properties"][modality]["properties"]["backbones"]["properties"][size]["default"])
    config = yaml.safe_load((benchlib.REPO / "config" / "config.yaml").read_text())
    params.update(((config.get(modality) or {}).get("backbones") or {}).get(size) or {})
    return params


def tsfm_backbone(size: str, root: Path):
    """A demo-shaped Chronos-T5 with random weights, saved and loaded through the project's loader."""
    from sae_difficulty.modalities.tsfm.adapter import TimeSeriesModality
    from sae_difficulty.modalities.tsfm.backbone import backbone_spec, build_chronos_t5

    spec = backbone_spec(demo_backbone_params("tsfm", size))
    pipeline = build_chronos_t5(spec, seed=0)
    out = root / f"tsfm_{size}"
    pipeline.model.model.save_pretrained(out)
    return TimeSeriesModality().load_backbone(out, device="cpu"), spec


def bench_tsfm(root: Path, repeats: int, matmul: float, batch_size: int) -> dict[str, Any]:
    from sae_difficulty.modalities.tsfm import patching
    from sae_difficulty.modalities.tsfm.adapter import TimeSeriesModality
    from sae_difficulty.modalities.tsfm.tasks import read_windows

    modality = TimeSeriesModality()
    tasks_dir = root / "tsfm_tasks"
    # The default config's ETTh1 windows (schema defaults: context 128, horizon 24, stride 24).
    modality.build_tasks("etth1", {"path": "resources/ETTh1.csv"}, tasks_dir, seed=0)
    _, contexts, _ = read_windows(tasks_dir)
    n, steps = contexts.shape
    results = {}
    for size in ("small", "large"):
        model, spec = tsfm_backbone(size, root)
        out_zarr = root / f"tsfm_{size}.zarr"

        def extract() -> None:
            modality.extract(model, tasks_dir, LAYER, out_zarr, {"batch_size": batch_size})

        def forward() -> None:
            for start in range(0, n, batch_size):
                patching.run_encoder(model, contexts[start : start + batch_size])

        timing = benchlib.interleaved_times({"extract": extract, "forward": forward}, "forward", repeats)
        flops = count_flops(forward)
        results[size] = {
            "shape": {k: spec[k] for k in ("d_model", "n_layers", "n_heads", "d_ff", "d_kv", "context_length")},
            "batch_size": batch_size,
            **summarize(
                f"tsfm {size}",
                timing,
                {"windows": n, "tokens": n * steps},
                {"extract": flops, "forward": flops},
                matmul,
            ),
        }
    return results


# --------------------------------------------------------------------------- LM


def llm_backbone(size: str, root: Path):
    """A demo-shaped GPT-NeoX with random weights and the demo tokenizer, loaded through the project's loader."""
    from transformers import AutoTokenizer, GPTNeoXForCausalLM

    from sae_difficulty.modalities.llm.adapter import LanguageModality
    from sae_difficulty.modalities.llm.backbone import BackboneParams, gpt_neox_config

    params = BackboneParams.from_dict(demo_backbone_params("llm", size))
    tokenizer = AutoTokenizer.from_pretrained(demo_tokenizer(root, params.vocab_size))
    torch.manual_seed(0)
    model = GPTNeoXForCausalLM(gpt_neox_config(params, len(tokenizer)))
    out = root / f"llm_{size}"
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    return LanguageModality().load_backbone(out, device="cpu"), params


def demo_tokenizer(root: Path, vocab_size: int) -> Path:
    """The demo's BPE tokenizer, trained by the project on its backbone corpus (cached per size)."""
    from sae_difficulty.modalities.llm import corpus as llm_corpus

    out = root / f"llm_tokenizer_{vocab_size}"
    if not out.exists():
        documents = llm_corpus.backbone_documents(None, 200_000)
        tokenizer = llm_corpus.train_tokenizer([doc.text for doc in documents], vocab_size)
        tokenizer.save_pretrained(out)
    return out


def bench_llm(root: Path, repeats: int, matmul: float, batch_size: int) -> dict[str, Any]:
    from sae_difficulty.modalities.llm.adapter import LanguageModality
    from sae_difficulty.modalities.llm.patching import _pad_id, length_sorted_batches
    from sae_difficulty.modalities.llm.prompts import encode_prompt, right_pad
    from sae_difficulty.modalities.llm.tasks import load_examples

    modality = LanguageModality()
    results = {}
    for size in ("small", "large"):
        backbone, params = llm_backbone(size, root)
        for dataset in ("hellaswag", "squad"):
            tasks_dir = root / f"llm_tasks_{dataset}"
            if not tasks_dir.exists():
                modality.build_tasks(dataset, {"n_examples": 400}, tasks_dir, seed=0)
            _, examples = load_examples(tasks_dir)
            prompts = [encode_prompt(backbone, ex.prompt) for ex in examples]
            lengths = [len(p) - 1 for p in prompts]
            pad = _pad_id(backbone)
            # The batches extract runs (length-sorted inside windows), and plain tasks-order batches.
            batches = [right_pad([prompts[i] for i in b], pad) for _, window in length_sorted_batches(lengths, batch_size) for b in window]
            in_order = [right_pad(prompts[s : s + batch_size], pad) for s in range(0, len(prompts), batch_size)]
            n_tokens = sum(lengths)  # positions extracted (BOS excluded)
            out_zarr = root / f"llm_{size}_{dataset}.zarr"

            def extract() -> None:
                modality.extract(backbone, tasks_dir, LAYER, out_zarr, {"batch_size": batch_size})

            @torch.no_grad()
            def forward() -> None:
                for batch in batches:
                    backbone.model(batch)

            @torch.no_grad()
            def forward_to_layer() -> None:
                for batch in batches:
                    backbone.model(batch, stop_at_layer=LAYER + 1)

            @torch.no_grad()
            def forward_tasks_order() -> None:
                for batch in in_order:
                    backbone.model(batch)

            timing = benchlib.interleaved_times(
                {"extract": extract, "forward": forward, "forward_to_layer": forward_to_layer, "forward_tasks_order": forward_tasks_order},
                "forward",
                repeats,
            )
            flops = {name: count_flops(fn) for name, fn in (("forward", forward), ("forward_to_layer", forward_to_layer), ("forward_tasks_order", forward_tasks_order))}
            flops["extract"] = flops["forward_to_layer"]
            results[f"{size}_{dataset}"] = {
                "shape": {k: getattr(params, k) for k in ("d_model", "n_layers", "n_heads", "d_mlp", "context_length", "vocab_size")},
                "batch_size": batch_size,
                "padded_tokens": sum(b.numel() for b in batches),
                "padded_tokens_tasks_order": sum(b.numel() for b in in_order),
                **summarize(f"llm {size} {dataset}", timing, {"examples": len(prompts), "tokens": n_tokens}, flops, matmul),
            }
    return results


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--modality", choices=["tsfm", "llm", "both"], default="both")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/sae-bench/extraction"))
    args = parser.parse_args(argv)
    torch.set_num_threads(1)  # as inside a workflow job (blas_threads: 1)
    load_before = benchlib.loadavg()
    args.workdir.mkdir(parents=True, exist_ok=True)
    matmul = benchlib.matmul_gflops(threads=1)
    print(f"matmul bound: {matmul:.1f} GFLOP/s on one thread", file=sys.stderr)
    name = "extraction" if args.modality == "both" else f"extraction_{args.modality}"
    payload: dict[str, Any] = {
        "command": f"python bench/extraction.py --modality {args.modality} --repeats {args.repeats}",
        "repeats": args.repeats,
        "threads": 1,
        "layer": LAYER,
        "matmul_gflop_s_1thread": round(matmul, 2),
        "target_ratio": 0.8,
    }
    if args.modality in ("tsfm", "both"):
        payload["tsfm"] = bench_tsfm(args.workdir, args.repeats, matmul, batch_size=32)
    if args.modality in ("llm", "both"):
        payload["llm"] = bench_llm(args.workdir, args.repeats, matmul, batch_size=16)
    payload["matmul_gflop_s_1thread_after"] = round(benchlib.matmul_gflops(threads=1), 2)
    # The bound is the best rate this CPU reached: a measurement taken while other jobs
    # held the cores understates it (fractions above 1 were seen).
    bound = max(payload["matmul_gflop_s_1thread"], payload["matmul_gflop_s_1thread_after"])
    payload["matmul_gflop_s_1thread_bound"] = bound
    for modality in ("tsfm", "llm"):
        for result in payload.get(modality, {}).values():
            for variant in result.values():
                if isinstance(variant, dict) and "gflop_s" in variant:
                    variant["fraction_of_matmul"] = round(variant["gflop_s"] / bound, 4)
    benchlib.write_result(name, payload, load_before)
    shutil.rmtree(args.workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
