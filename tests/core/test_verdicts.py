"""The four-way verdict on Δ with an equivalence margin."""

from __future__ import annotations

import numpy as np
import pytest

from sae_difficulty.core.resampling import compare_scores_dependent
from sae_difficulty.core.verdicts import delta_verdict, verdict_words
from sae_difficulty.utils.errors import InputError


def test_equal_scores_on_many_examples_are_equivalent_not_a_null():
    """Pins item 3 of issue 17: "CI spans 0" used to read as "the null holds" however wide the CI.
    Two equally good scores on many examples are now "equivalent within ±m"; the same on few examples,
    with a CI wider than the margin, is "inconclusive"."""
    rng = np.random.default_rng(0)

    def verdict(n: int) -> str:
        y = rng.integers(0, 2, n)
        signal = y + rng.normal(size=n)
        a, b = signal + 0.3 * rng.normal(size=n), signal + 0.3 * rng.normal(size=n)
        d = compare_scores_dependent(y, a, b, n_boot=1000, n_perm=100, seed=1)
        return delta_verdict((d["ci_low"], d["ci_high"]), (d["ci90_low"], d["ci90_high"]), 0.02)

    assert verdict(4000) == "equivalent within ±0.02"
    assert verdict(60) == "inconclusive"


@pytest.mark.parametrize(
    ("ci95", "ci90", "expected"),
    [((0.01, 0.05), (0.015, 0.045), "SAE adds signal"), ((-0.05, -0.01), (-0.045, -0.015), "SAE worse"),
     ((-0.015, 0.018), (-0.012, 0.015), "equivalent within ±0.02"), ((-0.01, 0.04), (-0.005, 0.035), "inconclusive")],
)  # fmt: skip
def test_four_words(ci95, ci90, expected):
    assert delta_verdict(ci95, ci90, 0.02) == expected
    assert expected in verdict_words(0.02)


def test_bad_margin_names_the_key():
    with pytest.raises(InputError, match="equivalence_margin"):
        delta_verdict((0, 1), (0, 1), 0.0)
