"""The one way figures are saved: deterministic PNG bytes, no "Software" metadata, no pyplot."""

from __future__ import annotations

import numpy as np
import pytest

from sae_difficulty.utils.errors import InputError
from sae_difficulty.utils.plotting import new_figure, save_figure


def _draw(path):
    figure = new_figure(3, 2)
    figure.subplots().plot(np.arange(5), np.arange(5) ** 2)
    return save_figure(figure, path)


def test_same_figure_same_bytes_without_software_metadata(tmp_path):
    first, second = _draw(tmp_path / "a" / "one.png"), _draw(tmp_path / "two.png")
    assert first.read_bytes() == second.read_bytes()
    assert b"Software" not in first.read_bytes() and b"matplotlib" not in first.read_bytes()


def test_dpi_sets_the_pixel_size_and_non_png_is_refused(tmp_path):
    figure = new_figure(3, 2)
    path = save_figure(figure, tmp_path / "small.png", dpi=50)
    width, height = int.from_bytes(path.read_bytes()[16:20], "big"), int.from_bytes(path.read_bytes()[20:24], "big")
    assert (width, height) == (150, 100)
    with pytest.raises(InputError, match=r"expected a \.png file"):
        save_figure(figure, tmp_path / "figure.pdf")
