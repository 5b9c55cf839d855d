"""The one way figures are made and saved: ``matplotlib.figure.Figure`` + an Agg canvas, deterministic PNG bytes.

No pyplot: pyplot keeps a global figure registry and a global backend, so a figure
made in one call can leak into the next (and ``matplotlib.use`` changes the backend
for the whole process). PNGs are written at a fixed dpi with the "Software" metadata
removed, so the same inputs give identical bytes.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from sae_difficulty.utils.errors import InputError

DPI = 120
_PNG_METADATA = {"Software": None}


def new_figure(width: float, height: float, **kwargs: Any) -> Figure:
    """A figure of ``width`` x ``height`` inches with its own Agg canvas (``kwargs`` go to ``Figure``)."""
    figure = Figure(figsize=(width, height), **kwargs)
    FigureCanvasAgg(figure)
    return figure


def save_figure(figure: Figure, path: str | os.PathLike, dpi: float = DPI) -> Path:
    """Write ``figure`` as a PNG at ``dpi`` with no "Software" metadata; create the folder; return the path."""
    path = Path(path)
    if path.suffix.lower() != ".png":
        raise InputError(f"path: expected a .png file, got {str(path)!r}")
    path.parent.mkdir(parents=True, exist_ok=True)
    if not isinstance(figure.canvas, FigureCanvasAgg):
        FigureCanvasAgg(figure)
    figure.savefig(path, dpi=dpi, format="png", metadata=_PNG_METADATA)
    return path
