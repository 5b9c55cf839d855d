"""Item 1: extraction throughput of the adapters on the demo backbones.

For each backbone shape of the default config (``small`` and ``large`` of
``config/config.yaml`` over the schema's defaults) a model with random weights is built with the project's own builder, saved
in Hugging Face format and loaded through the project's loader (weights do not change
the cost of a forward pass). Then, interleaved in one process on one thread (every
workflow job pins BLAS to one thread):

* ``extract``: the adapter's ``extract`` on the demo tasks into a fresh zarr cache
  (reading the task files, hooks, pooling and zarr writes included);
* ``forward``: the model's bare forward pass on the same batches (LM: the
  ``HookedTransformer`` forward on the same right-padded prompt batches, unembedding
  included; TSFM: the Chronos tokenizer and the T5 encoder on the same windows, which
  is all the extraction needs), nothing kept;
* LM only, ``forward_to_layer``: the forward stopped after the extracted block
  (``stop_at_layer``), i.e. the compute extraction cannot avoid.

Ratios are throughput ratios (extract / reference; target >= 0.8 against ``forward``).
The FLOP fraction is the extraction's achieved FLOP rate (FLOPs of the forward it runs,
counted by ``torch.utils.flop_counter``) over the FLOP rate of a plain single-thread
float32 matmul on this CPU.

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

    from sae_difficulty.config import SCHEMA_PATH

    schema = yaml.safe_load(Path(SCHEMA_PATH).read_text())
    params = dict(schema["properties"][modality]["properties"]["backbones"]["properties"][size]["default"])
    config = yaml.safe_load((benchlib.REPO / "config" / "config.yaml").read_text())
    params.update(((config.get(modality) or {}).get("backbones") or {}).get(size) or {})
    return params


def tsfm_backbone(size: str, root: Path):
    """A demo-shaped Chronos-T5 with random weights, saved and loaded through the project's loader."""
    from sae_difficulty.modalities.tsfm import TimeSeriesModality
    from sae_difficulty.modalities.tsfm_backbone import backbone_spec, build_chronos_t5

    spec = backbone_spec(demo_backbone_params("tsfm", size))
    pipeline = build_chronos_t5(spec, seed=0)
    out = root / f"tsfm_{size}"
    pipeline.model.model.save_pretrained(out)
    return TimeSeriesModality().load_backbone(out, device="cpu"), spec


def proposed_tsfm_extract(model, tasks_dir: Path, layer: int, out_zarr: Path, params: dict[str, Any]) -> None:
    """``TimeSeriesModality.extract`` with the write pattern proposed in bench/README.md,
    same cache: ``tokens`` rows in whole chunks (:class:`ChunkAlignedWriter`), ``last`` and
    ``mean`` ([N, d], small) filled in memory and written once, instead of three zarr
    writes per batch (two of them rewriting a whole chunk for a few rows)."""
    import zarr

    from sae_difficulty.modalities import tsfm_patching as patching
    from sae_difficulty.modalities.tsfm import CHUNK_ROWS, TimeSeriesModality, read_windows

    layer = patching.check_layer(model, layer)
    _, contexts, _ = read_windows(tasks_dir)
    n, steps, d = len(contexts), contexts.shape[1], int(model.model.model.config.d_model)
    group = zarr.open_group(str(out_zarr), mode="w", zarr_format=3)
    tokens = group.create_array("tokens", shape=(n * steps, d), chunks=(min(CHUNK_ROWS, n * steps), d), dtype="float32", compressors=None)
    group.create_array("offsets", shape=(n + 1,), dtype="int64", compressors=None)[...] = np.arange(n + 1, dtype=np.int64) * steps
    last = np.empty((n, d), dtype=np.float32)
    mean = np.empty((n, d), dtype=np.float32)
    writer = ChunkAlignedWriter(tokens)
    batch_size = int(params.get("batch_size", 32))
    for start in range(0, n, batch_size):
        stop = min(start + batch_size, n)
        states = TimeSeriesModality._context_states(model, contexts[start:stop], layer)
        writer.append(states.reshape(-1, d))
        last[start:stop] = states[:, -1]
        mean[start:stop] = states.mean(axis=1, dtype=np.float64).astype(np.float32)
    writer.close()
    group.create_array("last", shape=(n, d), chunks=(min(CHUNK_ROWS, n), d), dtype="float32", compressors=None)[...] = last
    group.create_array("mean", shape=(n, d), chunks=(min(CHUNK_ROWS, n), d), dtype="float32", compressors=None)[...] = mean


def bench_tsfm(root: Path, repeats: int, matmul: float, batch_size: int) -> dict[str, Any]:
    from sae_difficulty.modalities import tsfm_patching as patching
    from sae_difficulty.modalities.tsfm import TimeSeriesModality, read_windows

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

        proposed_zarr = root / f"tsfm_{size}_proposed.zarr"

        def extract_proposed() -> None:
            proposed_tsfm_extract(model, tasks_dir, LAYER, proposed_zarr, {"batch_size": batch_size})

        timing = benchlib.interleaved_times({"extract": extract, "forward": forward, "extract_proposed": extract_proposed}, "forward", repeats)
        flops = count_flops(forward)
        results[size] = {
            "shape": {k: spec[k] for k in ("d_model", "n_layers", "n_heads", "d_ff", "d_kv", "context_length")},
            "batch_size": batch_size,
            "proposed_equals_project": same_cache(out_zarr, proposed_zarr),
            **summarize(
                f"tsfm {size}",
                timing,
                {"windows": n, "tokens": n * steps},
                {"extract": flops, "forward": flops, "extract_proposed": flops},
                matmul,
            ),
        }
    return results


# --------------------------------------------------------------------------- LM


def llm_backbone(size: str, root: Path):
    """A demo-shaped GPT-NeoX with random weights and the demo tokenizer, loaded through the project's loader."""
    from transformers import AutoTokenizer, GPTNeoXForCausalLM

    from sae_difficulty.modalities.llm import LanguageModality
    from sae_difficulty.modalities.llm_backbone import BackboneParams, gpt_neox_config

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
    from sae_difficulty.modalities import llm_corpus

    out = root / f"llm_tokenizer_{vocab_size}"
    if not out.exists():
        documents = llm_corpus.backbone_documents(None, 200_000)
        tokenizer = llm_corpus.train_tokenizer([doc.text for doc in documents], vocab_size)
        tokenizer.save_pretrained(out)
    return out


class ChunkAlignedWriter:
    """Appends rows to a zarr array in whole chunks: rows are buffered until a chunk is
    full, so no chunk is ever read back and rewritten (zarr rewrites a whole chunk for a
    partial write). Memory: less than one chunk plus one batch."""

    def __init__(self, array: Any) -> None:
        self.array = array
        self.chunk_rows = int(array.chunks[0])
        self.pending: list[np.ndarray] = []
        self.pending_rows = 0
        self.written = 0

    def append(self, rows: np.ndarray) -> None:
        self.pending.append(rows)
        self.pending_rows += len(rows)
        if self.pending_rows >= self.chunk_rows:
            self._write(self.pending_rows // self.chunk_rows * self.chunk_rows)

    def _write(self, n_rows: int) -> None:
        block = np.concatenate(self.pending)
        self.array[self.written : self.written + n_rows] = block[:n_rows]
        self.written += n_rows
        rest = block[n_rows:]
        self.pending = [rest] if len(rest) else []
        self.pending_rows = len(rest)

    def close(self) -> None:
        if self.pending_rows:
            self._write(self.pending_rows)


def proposed_llm_extract(backbone, tasks_dir: Path, layer: int, out_zarr: Path, params: dict[str, Any], sort_by_length: bool = False) -> None:
    """``llm_patching.extract`` with the changes proposed in bench/README.md, same cache:

    * the residual comes from the forward stopped after block ``layer`` (``stop_at_layer``
      returns ``blocks.{layer}.hook_resid_post`` itself), not from ``run_with_cache``;
    * ``tokens`` rows are written in whole chunks (:class:`ChunkAlignedWriter`); ``last``
      and ``mean`` ([N, d], small) are filled in memory and written once;
    * optionally (``sort_by_length``) batches are formed from prompts of similar length,
      so far fewer padding positions are computed; rows are still written in tasks order.
    """
    import zarr

    from sae_difficulty.modalities.llm_backbone import check_layer
    from sae_difficulty.modalities.llm_patching import _pad_id, _row_array
    from sae_difficulty.modalities.llm_tasks import encode_prompt, load_examples, right_pad

    check_layer(backbone, layer)
    batch_size = int(params.get("batch_size", 16))
    _, examples = load_examples(tasks_dir)
    prompts = [encode_prompt(backbone, ex.prompt) for ex in examples]
    lengths = np.array([len(p) - 1 for p in prompts], dtype=np.int64)
    offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
    n, d = len(examples), backbone.d_model
    group = zarr.open_group(str(out_zarr), mode="w", zarr_format=3)
    tokens_array = _row_array(group, "tokens", int(offsets[-1]), d)
    last = np.empty((n, d), dtype=np.float32)
    mean = np.empty((n, d), dtype=np.float32)
    group.create_array("offsets", shape=(n + 1,), chunks=(n + 1,), dtype="int64", compressors=None)[...] = offsets
    pad = _pad_id(backbone)

    def residual_rows(indices: list[int]) -> list[np.ndarray]:
        with torch.no_grad():
            resid = backbone.model(right_pad([prompts[i] for i in indices], pad).to(backbone.device), stop_at_layer=layer + 1)
        resid = resid.float().cpu().numpy()
        return [resid[j, 1 : 1 + lengths[i]] for j, i in enumerate(indices)]

    writer = ChunkAlignedWriter(tokens_array)
    if not sort_by_length:
        for start in range(0, n, batch_size):
            indices = list(range(start, min(start + batch_size, n)))
            rows = residual_rows(indices)
            writer.append(np.concatenate(rows))
            last[indices] = np.stack([r[-1] for r in rows])
            mean[indices] = np.stack([r.astype(np.float64).mean(axis=0) for r in rows]).astype(np.float32)
    else:
        # Length-sorted batches inside windows of `window` examples, written back in tasks order.
        window = 64 * batch_size
        for window_start in range(0, n, window):
            members = np.arange(window_start, min(window_start + window, n))
            order = members[np.argsort(lengths[members], kind="stable")]
            rows_by_example: dict[int, np.ndarray] = {}
            for start in range(0, len(order), batch_size):
                indices = [int(i) for i in order[start : start + batch_size]]
                rows_by_example.update(zip(indices, residual_rows(indices)))
            for i in members:
                rows = rows_by_example[int(i)]
                writer.append(rows)
                last[i] = rows[-1]
                mean[i] = rows.astype(np.float64).mean(axis=0).astype(np.float32)
    writer.close()
    _row_array(group, "last", n, d)[...] = last
    _row_array(group, "mean", n, d)[...] = mean


def same_cache(a: Path, b: Path) -> dict[str, Any]:
    """Whether two activation caches hold identical arrays (and the largest difference)."""
    import zarr

    ga, gb = zarr.open_group(str(a), mode="r"), zarr.open_group(str(b), mode="r")
    out: dict[str, Any] = {}
    for name in ("tokens", "last", "mean", "offsets"):
        x, y = np.asarray(ga[name][...]), np.asarray(gb[name][...])
        out[name] = {"identical": bool(np.array_equal(x, y)), "max_abs_diff": float(np.max(np.abs(x.astype(np.float64) - y)))}
    return out


def bench_llm(root: Path, repeats: int, matmul: float, batch_size: int) -> dict[str, Any]:
    from sae_difficulty.modalities.llm import LanguageModality
    from sae_difficulty.modalities.llm_patching import _pad_id
    from sae_difficulty.modalities.llm_tasks import encode_prompt, load_examples, right_pad

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
            batches = [right_pad(prompts[s : s + batch_size], _pad_id(backbone)) for s in range(0, len(prompts), batch_size)]
            n_tokens = sum(len(p) - 1 for p in prompts)  # positions extracted (BOS excluded)
            padded_tokens = sum(b.numel() for b in batches)
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

            proposed_zarr = root / f"llm_{size}_{dataset}_proposed.zarr"
            sorted_zarr = root / f"llm_{size}_{dataset}_sorted.zarr"

            def extract_proposed() -> None:
                proposed_llm_extract(backbone, tasks_dir, LAYER, proposed_zarr, {"batch_size": batch_size})

            def extract_proposed_sorted() -> None:
                proposed_llm_extract(backbone, tasks_dir, LAYER, sorted_zarr, {"batch_size": batch_size}, sort_by_length=True)

            timing = benchlib.interleaved_times(
                {
                    "extract": extract,
                    "forward": forward,
                    "forward_to_layer": forward_to_layer,
                    "extract_proposed": extract_proposed,
                    "extract_proposed_sorted": extract_proposed_sorted,
                },
                "forward",
                repeats,
            )
            flops = {"forward": count_flops(forward), "forward_to_layer": count_flops(forward_to_layer)}
            flops["extract"] = flops["extract_proposed"] = flops["forward_to_layer"]
            flops["extract_proposed_sorted"] = count_flops(extract_proposed_sorted)
            results[f"{size}_{dataset}"] = {
                "shape": {k: getattr(params, k) for k in ("d_model", "n_layers", "n_heads", "d_mlp", "context_length", "vocab_size")},
                "batch_size": batch_size,
                "padded_tokens": padded_tokens,
                "proposed_equals_project": same_cache(out_zarr, proposed_zarr),
                "sorted_equals_project": same_cache(out_zarr, sorted_zarr),
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
        "command": f"python bench/extraction.py --modality {args.modality}",
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
    benchlib.write_result(name, payload, load_before)
    shutil.rmtree(args.workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
