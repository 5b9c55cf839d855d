"""Item 2: SAE training fed from the zarr cache (streaming) against an in-memory tensor.

Throughput: the project's trainer (:func:`sae_difficulty.saes.training.fit_sae`, sae-lens'
``SAETrainer``) is run on the same spec two ways, interleaved in one process:

* ``stream``: batches from :func:`sae_difficulty.saes.cache.stream_batches` over the zarr
  training cache, with the buffer size the ``sae`` stage uses (``buffer_batches``)
  - what the workflow does (``ZarrBatchStream``: permutation-gather shuffle, chunks
  decoded straight into the buffer; see its docstring);
* ``memory``: the whole cache loaded into one tensor, batches gathered by a fresh
  random permutation each epoch (the reference: no I/O, no buffer).

Ratio = memory time / stream time (streaming throughput over in-memory; target >= 0.9).

Memory: each way runs in a fresh interpreter on a cache of N rows and of 4N rows, one
full epoch; the child reports its peak RSS. Streaming must stay bounded as the cache
grows 4x; in-memory grows by the size of the data.

    python bench/sae_training.py           # ~4 minutes
    python bench/sae_training.py --quick
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

import benchlib  # noqa: E402

#: SAE shapes of the two configs: (d_in, expansion, k, batch_size, lr).
SHAPES = {
    "demo": {"d": 64, "expansion": 4, "k": 16, "batch_size": 1024, "lr": 1e-3},
    "ci": {"d": 32, "expansion": 2, "k": 8, "batch_size": 256, "lr": 3e-3},
}


def memory_batches(data: torch.Tensor, batch_size: int, seed: int) -> Iterator[torch.Tensor]:
    """Shuffled batches of an in-memory tensor, forever (a new permutation each epoch)."""
    generator = torch.Generator().manual_seed(seed)
    n = data.shape[0]
    while True:
        order = torch.randperm(n, generator=generator)
        for start in range(0, n - batch_size + 1, batch_size):
            yield data[order[start : start + batch_size]]


def make_spec(shape: dict[str, Any], steps: int, buffer_batches: int):
    from sae_difficulty.saes.training import SAETrainingSpec

    return SAETrainingSpec(
        architecture="topk",
        expansion=shape["expansion"],
        k=shape["k"],
        lr=shape["lr"],
        batch_size=shape["batch_size"],
        training_tokens=steps * shape["batch_size"],
        max_batches_in_memory=buffer_batches,
    )


def throughput(shape_name: str, rows: int, steps: int, repeats: int, workdir: Path) -> dict[str, Any]:
    """Interleaved fit_sae runs: the project's stream and in-memory (reference)."""
    from sae_difficulty.saes.cache import (
        open_training_cache,
        stream_batches,
        write_training_cache,
    )
    from sae_difficulty.saes.training import fit_sae
    from sae_difficulty.stages.sae import buffer_batches

    shape = SHAPES[shape_name]
    d, batch = shape["d"], shape["batch_size"]
    data = np.random.default_rng(0).standard_normal((rows, d), dtype=np.float32)
    cache_path = workdir / f"throughput_{shape_name}.zarr"
    write_training_cache(cache_path, data, data[:4096])
    cache = open_training_cache(cache_path)
    batches_in_buffer = buffer_batches(cache.train.chunks[0], batch)
    spec = make_spec(shape, steps, batches_in_buffer)
    in_memory = torch.from_numpy(np.asarray(cache.train[...]))

    def run(make_batches) -> None:
        fit_sae(make_batches(), spec, d)

    variants = {
        "stream": lambda: run(lambda: stream_batches(cache.train, batch, seed=0, max_batches_in_memory=batches_in_buffer)),
        "memory": lambda: run(lambda: memory_batches(in_memory, batch, seed=0)),
    }
    timing = benchlib.interleaved_times(variants, "memory", repeats)

    def per_batch_ms(factory) -> float:
        """The loader alone, no training: ms per batch over the same number of steps."""
        iterator = factory()
        return benchlib.timed(lambda: [next(iterator) for _ in range(steps)]) / steps * 1e3

    loader_ms = {
        "stream": per_batch_ms(lambda: stream_batches(cache.train, batch, seed=0, max_batches_in_memory=batches_in_buffer)),
        "memory": per_batch_ms(lambda: memory_batches(in_memory, batch, seed=0)),
    }
    tokens = steps * batch
    return {
        "shape": shape,
        "cache_rows": rows,
        "steps": steps,
        "buffer_batches": batches_in_buffer,
        "tokens_per_s": {name: round(tokens / t["median_s"], 1) for name, t in timing.items()},
        "ratio_stream_vs_memory": round(1 / timing["stream"]["time_ratio"], 3),
        # no separate proposed variant any more: the fix is in sae_cache.ZarrBatchStream (kept
        # as None so bench/summarize.py, which still reads the key, prints "-")
        "ratio_stream_proposed_vs_memory": None,
        "ratio_min_max": [round(1 / x, 3) for x in reversed(timing["stream"]["time_ratio_min_max"])],
        "loader_ms_per_batch": {k: round(v, 3) for k, v in loader_ms.items()},
        "seconds": {name: t["seconds"] for name, t in timing.items()},
    }


CHILD = r"""
import json, sys, numpy as np, torch
sys.path.insert(0, "bench")
from benchlib import self_peak_rss_mb
from sae_training import SHAPES, make_spec, memory_batches
from sae_difficulty.sae import fit_sae, open_training_cache, stream_batches
from sae_difficulty.stages.sae import buffer_batches
mode, path, shape_name = sys.argv[1], sys.argv[2], sys.argv[3]
shape = SHAPES[shape_name]
cache = open_training_cache(path)
rows, batch = cache.train.shape[0], shape["batch_size"]
batches = buffer_batches(cache.train.chunks[0], batch)
spec = make_spec(shape, rows // batch, batches)
before = self_peak_rss_mb()
extra = {}
if mode == "stream":
    stream = stream_batches(cache.train, batch, seed=0, max_batches_in_memory=batches)
    fit_sae(stream, spec, cache.d_in)
    extra = {"max_rows_buffered": stream.max_rows_buffered, "rows_read": stream.rows_read}
else:
    data = torch.from_numpy(np.asarray(cache.train[...]))
    fit_sae(memory_batches(data, batch, seed=0), spec, cache.d_in)
print(json.dumps({"peak_rss_mb": self_peak_rss_mb(), "peak_rss_before_training_mb": before, **extra}))
"""


def peak_memory(shape_name: str, base_rows: int, workdir: Path) -> dict[str, Any]:
    """Peak RSS of one full epoch, streaming and in-memory, on caches of N and 4N rows."""
    from sae_difficulty.saes.cache import write_training_cache

    d = SHAPES[shape_name]["d"]
    rng = np.random.default_rng(1)
    results: dict[str, Any] = {"rows": {"1x": base_rows, "4x": 4 * base_rows}, "d": d}
    paths = {}
    for label, rows in results["rows"].items():
        data = rng.standard_normal((rows, d), dtype=np.float32)
        paths[label] = workdir / f"memory_{shape_name}_{label}.zarr"
        write_training_cache(paths[label], data, data[:4096])
        results.setdefault("data_mb", {})[label] = round(data.nbytes / 2**20, 1)
    for mode in ("stream", "memory"):
        for label, path in paths.items():
            child = benchlib.run_child(CHILD, [mode, str(path), shape_name], env={"OMP_NUM_THREADS": "1"})
            results.setdefault(mode, {})[label] = child
            print(f"peak RSS {mode} {label}: {child['peak_rss_mb']:.0f} MB", file=sys.stderr)
    for mode in ("stream", "memory"):
        results[mode]["growth_mb"] = round(results[mode]["4x"]["peak_rss_mb"] - results[mode]["1x"]["peak_rss_mb"], 1)
    data_growth = results["data_mb"]["4x"] - results["data_mb"]["1x"]
    # Bounded: growing the cache by `data_growth` MB moves the streaming peak by under 10% of it.
    results["stream_bounded"] = bool(results["stream"]["growth_mb"] < 0.1 * data_growth)
    return results


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/sae-bench/sae_training"))
    args = parser.parse_args(argv)
    torch.set_num_threads(1)  # the workflow pins every job to one BLAS thread
    load_before = benchlib.loadavg()
    args.workdir.mkdir(parents=True, exist_ok=True)
    repeats = 3 if args.quick else 5
    results: dict[str, Any] = {}
    for shape_name, steps in (("demo", 60 if args.quick else 120), ("ci", 120 if args.quick else 240)):
        row = throughput(shape_name, rows=200_000, steps=steps, repeats=repeats, workdir=args.workdir)
        print(
            f"{shape_name}: tokens/s {row['tokens_per_s']}; stream/memory {row['ratio_stream_vs_memory']}; "
            f"loader ms/batch {row['loader_ms_per_batch']}",
            file=sys.stderr,
        )
        results[shape_name] = row
    memory = peak_memory("demo", 100_000 if args.quick else 200_000, args.workdir)
    benchlib.write_result(
        "sae_training",
        {
            "command": "python bench/sae_training.py" + (" --quick" if args.quick else ""),
            "target_ratio": 0.9,
            "throughput": results,
            "peak_memory": memory,
        },
        load_before,
    )


if __name__ == "__main__":
    main()
