"""Frequency-matched random feature sets: the control distribution of the causal k/n."""

from __future__ import annotations

import numpy as np
import pandas as pd

from sae_difficulty.core.causal_control import (
    control_summary,
    frequency_bins,
    matched_random_sets,
)


def test_random_sets_match_the_top_features_deciles():
    rng = np.random.default_rng(0)
    freqs = rng.random(500) ** 3
    top = [int(np.argmax(freqs)), int(np.argmin(freqs)), 17, 250, 499]
    bins = frequency_bins(freqs)
    sets = matched_random_sets(freqs, top, 30, seed=2)
    for members in sets:
        assert [bins[m] for m in members] == [bins[t] for t in top]
        assert not set(members) & set(top) and len(set(members)) == len(members)
    assert len({tuple(s) for s in sets}) > 25


def test_an_effect_every_active_feature_has_is_not_beyond_control():
    """Pins item 4 of issue 17: "k/5 significant" had no control. With a planted shift that ablating ANY
    frequent feature causes, the top-5 reach k = 5 and so do the matched random sets: p is not small.
    Only top features with an effect the random ones lack get a small empirical p."""
    from sae_difficulty.stages.causal import summarize

    rng = np.random.default_rng(1)
    n_examples, n_features = 80, 60
    freqs = np.linspace(0.01, 0.5, n_features)
    top = [59, 58, 57, 56, 55]
    sets = matched_random_sets(freqs, top, 19, seed=0)
    features = top + sorted({f for s in sets for f in s} - set(top))

    def deltas(effect_of) -> pd.DataFrame:
        rows = [{"id": i, "feature": f, "positions": p, "delta": effect_of(f) + rng.normal(0, 0.1)}
                for p in ("last", "all") for f in features for i in range(n_examples)]  # fmt: skip
        return pd.DataFrame(rows)

    everyone = summarize(deltas(lambda f: 0.1), top, 0.05, "holm", sets)[0]["all"]
    assert everyone["n_significant"] == 5 and everyone["control"]["p_empirical"] == 1.0
    only_top = summarize(deltas(lambda f: 0.1 if f in top else 0.0), top, 0.05, "holm", sets)[0]["all"]
    assert only_top["n_significant"] == 5 and only_top["control"]["p_empirical"] == 0.05
    assert only_top["control"]["p95"] <= 1


def test_control_summary():
    summary = control_summary(3, [0, 1, 1, 2, 3])
    assert summary["median"] == 1 and summary["p_empirical"] == 2 / 6 and summary["n_sets"] == 5


def test_overlapping_windows_are_tested_on_block_means():
    """Pins the dependence-aware causal test (item 2 for the causal p-values): Δs of overlapping windows
    that move together in runs of 8 look like 80 independent signs to a per-window Wilcoxon test (p < 0.01)
    but are 10 independent runs; tested on block means the same effect is not significant."""
    from sae_difficulty.stages.causal import summarize

    rng = np.random.default_rng(3)
    runs = np.array([1.0] * 7 + [-1.0] * 3)
    ids = [f"w{i:03d}" for i in range(80)]
    values = np.repeat(runs, 8) + 0.05 * rng.normal(size=80)
    deltas = pd.DataFrame([{"id": i, "feature": 0, "positions": p, "delta": v}
                           for p in ("last", "all") for i, v in zip(ids, values)])  # fmt: skip
    per_window = summarize(deltas, [0], 0.05, "holm")[0]["all"]
    blocked = summarize(deltas, [0], 0.05, "holm", blocks={i: k // 8 for k, i in enumerate(ids)})[0]["all"]
    assert per_window["n_significant"] == 1 and per_window["n_test_units"] == 80
    assert blocked["n_significant"] == 0 and blocked["n_test_units"] == 10
