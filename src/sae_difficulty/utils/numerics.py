"""Reproducibility helpers: one BLAS thread and seeded RNGs inside numerics-critical code."""

from __future__ import annotations

import contextlib
import os
import random
from collections.abc import Iterator

import numpy as np
from threadpoolctl import threadpool_limits


@contextlib.contextmanager
def pinned_blas(threads: int = 1) -> Iterator[None]:
    """Pin BLAS (and torch, when loaded) to ``threads`` threads.

    Parallelism comes from Snakemake jobs; inside one job a fixed thread count keeps
    floating-point reductions in the same order, so the same config gives
    bit-identical numbers.
    """
    torch_threads = None
    try:
        import sys

        if "torch" in sys.modules:
            import torch

            torch_threads = torch.get_num_threads()
            torch.set_num_threads(threads)
    except Exception:  # pragma: no cover - torch missing or broken is not our concern here
        torch_threads = None
    with threadpool_limits(limits=threads):
        yield
    if torch_threads is not None:
        import torch

        torch.set_num_threads(torch_threads)


def seed_everything(seed: int) -> np.random.Generator:
    """Seed python, numpy and (if importable) torch; return a numpy Generator."""
    random.seed(seed)
    np.random.seed(seed % (2**32))
    os.environ.setdefault("PYTHONHASHSEED", str(seed))
    try:
        import torch

        torch.manual_seed(seed)
    except ImportError:  # pragma: no cover
        pass
    return np.random.default_rng(seed)
