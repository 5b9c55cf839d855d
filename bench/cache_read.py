"""Item 3: zarr cache read throughput against a raw ``.npy`` memmap of the same bytes.

The SAE stage reads its training cache the way :class:`sae_difficulty.saes.cache.ZarrBatchStream`
does: whole row chunks, in a seeded random chunk order, each copied into the shuffle
buffer. This benchmark does exactly that for a zarr v3 array written like the project
writes it (float32, uncompressed, ``chunks=(chunk_rows, d)``) and for a ``.npy`` file of
the same rows opened with ``np.load(mmap_mode="r")``, reading the same row ranges in the
same order into the same buffer. Ratio = zarr MB/s / memmap MB/s (target >= 0.5).

Two cache states: ``warm`` (the files are in the page cache, as right after the
``sae_activations`` job wrote them) and ``cold`` (each file's pages dropped with
``posix_fadvise(DONTNEED)`` before every pass; no root needed, other processes'
pages untouched). A third measurement runs the project's own ``stream_batches`` over
the zarr array and over the memmap (shuffle and batching included).

Swept: chunk rows (the project uses ``DEFAULT_CHUNK_ROWS`` = 4096) at two widths, the
demo's ``d = 64`` and Pythia-410M's ``d = 1024``.

    python bench/cache_read.py            # ~2 minutes
    python bench/cache_read.py --quick
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

import benchlib  # noqa: E402


def drop_from_page_cache(path: Path) -> None:
    """Ask the kernel to forget the cached pages of every file under ``path``."""
    files = [path] if path.is_file() else [p for p in path.rglob("*") if p.is_file()]
    for file in files:
        fd = os.open(file, os.O_RDONLY)
        try:
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        finally:
            os.close(fd)


def chunk_order(n_rows: int, chunk_rows: int, seed: int) -> list[tuple[int, int]]:
    n_chunks = -(-n_rows // chunk_rows)
    order = np.random.default_rng(seed).permutation(n_chunks)
    return [(int(c) * chunk_rows, min((int(c) + 1) * chunk_rows, n_rows)) for c in order]


def read_pass(array: Any, ranges: list[tuple[int, int]], buffer: np.ndarray) -> None:
    """What the stream does today per chunk: read the rows (a new array), copy them into the buffer."""
    for start, stop in ranges:
        buffer[: stop - start] = array[start:stop]


def read_pass_into(array: Any, ranges: list[tuple[int, int]], buffer: np.ndarray) -> None:
    """The proposed read: zarr decodes each chunk straight into the buffer (``out=``), one copy less."""
    from zarr.core.buffer import default_buffer_prototype

    nd_buffer = default_buffer_prototype().nd_buffer
    for start, stop in ranges:
        array.get_basic_selection((slice(start, stop), slice(None)), out=nd_buffer.from_numpy_array(buffer[: stop - start]))


def read_pass_raw(chunk_files: list[Path], buffer: np.ndarray) -> None:
    """The floor for any store that keeps one file per chunk: one ``readinto`` per chunk
    file straight into the buffer (one copy from the page cache, no decoding, no zarr)."""
    view = memoryview(buffer).cast("B")
    for path in chunk_files:
        with open(path, "rb", buffering=0) as handle:
            handle.readinto(view)


def write_arrays(root: Path, data: np.ndarray, chunk_rows: int) -> tuple[Path, Path]:
    import zarr

    zarr_path = root / f"cache_{data.shape[1]}_{chunk_rows}.zarr"
    npy_path = root / f"cache_{data.shape[1]}.npy"
    if zarr_path.exists():
        shutil.rmtree(zarr_path)
    group = zarr.open_group(str(zarr_path), mode="w", zarr_format=3)
    # Exactly how the adapters create the SAE training cache.
    array = group.create_array("train", shape=data.shape, chunks=(min(chunk_rows, data.shape[0]), data.shape[1]), dtype="float32", compressors=None)
    array[...] = data
    if not npy_path.exists():
        np.save(npy_path, data)
    return zarr_path, npy_path


def measure(data: np.ndarray, chunk_rows: int, root: Path, repeats: int, cold: bool) -> dict[str, Any]:
    """One epoch of chunk reads, three ways, interleaved: zarr as the stream reads today,
    zarr decoding into the buffer, and the memmap (reference). Cold: the files' pages are
    dropped before every pass and the memmap is opened afresh (mapped pages are not dropped)."""
    import zarr

    zarr_path, npy_path = write_arrays(root, data, chunk_rows)
    z = zarr.open_group(str(zarr_path), mode="r")["train"]
    warm_memmap = np.load(npy_path, mmap_mode="r")
    buffer = np.empty((chunk_rows, data.shape[1]), dtype=np.float32)
    ranges = chunk_order(data.shape[0], chunk_rows, seed=0)

    def zarr_read(reader):
        def run() -> None:
            if cold:
                drop_from_page_cache(zarr_path)
            reader(z, ranges, buffer)

        return run

    chunk_files = [zarr_path / "train" / "c" / str(start // chunk_rows) / "0" for start, _ in ranges]

    def raw_read() -> None:
        if cold:
            drop_from_page_cache(zarr_path)
        read_pass_raw(chunk_files, buffer)

    def memmap_read() -> None:
        if not cold:
            read_pass(warm_memmap, ranges, buffer)
            return
        drop_from_page_cache(npy_path)
        memmap = np.load(npy_path, mmap_mode="r")
        read_pass(memmap, ranges, buffer)
        del memmap

    if cold:
        del warm_memmap
    timing = benchlib.interleaved_times(
        {"zarr": zarr_read(read_pass), "zarr_into_buffer": zarr_read(read_pass_into), "raw_chunk_files": raw_read, "memmap": memmap_read},
        "memmap",
        repeats,
    )
    megabytes = data.nbytes / 1e6
    return {
        "chunk_rows": chunk_rows,
        "chunk_mib": round(chunk_rows * data.shape[1] * 4 / 2**20, 3),
        "zarr_mb_s": round(megabytes / timing["zarr"]["median_s"], 1),
        "zarr_into_buffer_mb_s": round(megabytes / timing["zarr_into_buffer"]["median_s"], 1),
        "memmap_mb_s": round(megabytes / timing["memmap"]["median_s"], 1),
        "ratio": round(1 / timing["zarr"]["time_ratio"], 3),
        "ratio_into_buffer": round(1 / timing["zarr_into_buffer"]["time_ratio"], 3),
        "raw_chunk_files_mb_s": round(megabytes / timing["raw_chunk_files"]["median_s"], 1),
        "ratio_raw_chunk_files": round(1 / timing["raw_chunk_files"]["time_ratio"], 3),
        "ratio_min_max": [round(1 / x, 3) for x in reversed(timing["zarr"]["time_ratio_min_max"])],
        "zarr_ms_per_chunk": round(timing["zarr"]["median_s"] / len(ranges) * 1e3, 4),
        "memmap_ms_per_chunk": round(timing["memmap"]["median_s"] / len(ranges) * 1e3, 4),
    }


def measure_stream(data: np.ndarray, chunk_rows: int, root: Path, batch_size: int, repeats: int) -> dict[str, Any]:
    """The project's ``stream_batches`` over zarr vs over the memmap: one epoch, same seed."""
    import zarr

    from sae_difficulty.saes.cache import stream_batches
    from sae_difficulty.stages.sae import buffer_batches

    zarr_path, npy_path = write_arrays(root, data, chunk_rows)
    z = zarr.open_group(str(zarr_path), mode="r")["train"]
    memmap = np.load(npy_path, mmap_mode="r")
    batches = buffer_batches(chunk_rows, batch_size)

    class ChunkedMemmap:
        """The memmap with the zarr array's chunk size, so the stream reads the same ranges."""

        shape = memmap.shape
        chunks = (chunk_rows, data.shape[1])

        def __getitem__(self, key):
            return memmap[key]

    def epoch(array: Any) -> None:
        for _ in stream_batches(array, batch_size, seed=0, max_batches_in_memory=batches, epochs=1):
            pass

    def proposed_epoch() -> None:
        from sae_training import ProposedStream

        for _ in ProposedStream(z, batch_size, seed=0, max_batches_in_memory=batches, epochs=1):
            pass

    timing = benchlib.interleaved_times(
        {"zarr": lambda: epoch(z), "zarr_proposed": proposed_epoch, "memmap": lambda: epoch(ChunkedMemmap())}, "memmap", repeats
    )
    megabytes = data.nbytes / 1e6
    return {
        "chunk_rows": chunk_rows,
        "batch_size": batch_size,
        "zarr_stream_mb_s": round(megabytes / timing["zarr"]["median_s"], 1),
        "zarr_proposed_stream_mb_s": round(megabytes / timing["zarr_proposed"]["median_s"], 1),
        "memmap_stream_mb_s": round(megabytes / timing["memmap"]["median_s"], 1),
        "ratio": round(1 / timing["zarr"]["time_ratio"], 3),
        "ratio_proposed": round(1 / timing["zarr_proposed"]["time_ratio"], 3),
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="fewer sizes and repeats")
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/sae-bench/cache_read"))
    args = parser.parse_args(argv)
    from sae_difficulty.saes.cache import DEFAULT_CHUNK_ROWS

    load_before = benchlib.loadavg()
    args.workdir.mkdir(parents=True, exist_ok=True)
    repeats = 3 if args.quick else 7
    # Demo width (d_model 64) at the default 200k-token cache; Pythia-410M width (1024) at 64k rows.
    shapes = {64: 200_000, 1024: 65_536}
    # Chunk sizes from 64 KiB to 16 MiB at d=64 and 256 KiB to 64 MiB at d=1024.
    chunk_sizes = {64: [1024, 4096, 16384], 1024: [256, 1024, 4096]} if args.quick else {
        64: [256, 1024, 4096, 16384, 65536], 1024: [64, 256, 1024, 4096, 16384]}
    rng = np.random.default_rng(0)
    sweeps: dict[str, Any] = {}
    for d, rows in shapes.items():
        data = rng.standard_normal((rows, d), dtype=np.float32)
        for state in ("warm", "cold"):
            key = f"d{d}_{state}"
            sweeps[key] = []
            for chunk_rows in chunk_sizes[d]:
                row = measure(data, chunk_rows, args.workdir, repeats, cold=state == "cold")
                print(
                    f"{key} chunk_rows={chunk_rows:6d} ({row['chunk_mib']} MiB): zarr {row['zarr_mb_s']:8.1f} MB/s "
                    f"(into buffer {row['zarr_into_buffer_mb_s']:8.1f}), memmap {row['memmap_mb_s']:8.1f} MB/s, "
                    f"ratio {row['ratio']:.3f} (into buffer {row['ratio_into_buffer']:.3f}, raw chunk files {row['ratio_raw_chunk_files']:.3f})",
                    file=sys.stderr,
                )
                sweeps[key].append(row)
    stream = []
    for d, rows in shapes.items():
        data = rng.standard_normal((rows, d), dtype=np.float32)
        row = {"d": d, **measure_stream(data, DEFAULT_CHUNK_ROWS, args.workdir, batch_size=1024, repeats=3)}
        print(
            f"stream d={d}: zarr {row['zarr_stream_mb_s']} MB/s (proposed stream {row['zarr_proposed_stream_mb_s']}), "
            f"memmap {row['memmap_stream_mb_s']} MB/s, ratio {row['ratio']} (proposed {row['ratio_proposed']})",
            file=sys.stderr,
        )
        stream.append(row)
    project = {key: next(r for r in rows if r["chunk_rows"] == DEFAULT_CHUNK_ROWS) for key, rows in sweeps.items()}
    best = {key: max(rows, key=lambda r: r["ratio"]) for key, rows in sweeps.items()}
    best_into = {key: max(rows, key=lambda r: r["ratio_into_buffer"]) for key, rows in sweeps.items()}
    for key in sweeps:
        print(
            f"{key}: project chunking ({DEFAULT_CHUNK_ROWS} rows) ratio {project[key]['ratio']} "
            f"(into buffer {project[key]['ratio_into_buffer']}); best {best[key]['chunk_rows']} rows ratio {best[key]['ratio']}; "
            f"best into buffer {best_into[key]['chunk_rows']} rows ratio {best_into[key]['ratio_into_buffer']}",
            file=sys.stderr,
        )
    benchlib.write_result(
        "cache_read",
        {
            "command": "python bench/cache_read.py" + (" --quick" if args.quick else ""),
            "project_chunk_rows": DEFAULT_CHUNK_ROWS,
            "shapes": {str(d): [rows, d] for d, rows in shapes.items()},
            "repeats": repeats,
            "target_ratio": 0.5,
            "sweeps": sweeps,
            "at_project_chunking": project,
            "best_chunking": {key: {"chunk_rows": r["chunk_rows"], "ratio": r["ratio"]} for key, r in best.items()},
            "best_chunking_into_buffer": {
                key: {"chunk_rows": r["chunk_rows"], "ratio": r["ratio_into_buffer"]} for key, r in best_into.items()
            },
            "stream": stream,
        },
        load_before,
    )
    shutil.rmtree(args.workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
