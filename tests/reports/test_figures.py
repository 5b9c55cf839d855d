"""Every figure renders to a PNG with identical bytes for identical inputs."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from sae_difficulty.core.calibration import calibration_report
from sae_difficulty.core.cascade import cascade_report
from sae_difficulty.core.selective import risk_coverage
from sae_difficulty.core.stats import feature_effect_tests
from sae_difficulty.reports import figures
from sae_difficulty.utils.errors import InputError

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _inputs() -> dict[str, tuple]:
    rng = np.random.default_rng(0)
    n = 400
    error = (rng.random(n) < 0.3).astype(float)
    score = error + rng.normal(0, 0.8, n)
    p = 1 / (1 + np.exp(-2.5 * score))
    table = pd.DataFrame(
        {
            "rung": ["P1", "P2", "P3"],
            "blocks": ["cheap", "cheap+raw", "cheap+sae"],
            "auroc": [0.6, 0.62, 0.7],
            "auroc_ci_low": [0.55, 0.57, 0.66],
            "auroc_ci_high": [0.65, 0.67, 0.74],
        }
    )
    deltas = {"P3-P2": {"delta": 0.08, "ci_low": 0.03, "ci_high": 0.12, "p_paired_permutation": 0.001}}
    effects = feature_effect_tests(rng.normal(0.2, 1, size=(50, 3)), feature_names=[11, 42, 7])
    effects = pd.concat([effects.assign(positions="boundary"), effects.assign(positions="all")], ignore_index=True)
    return {
        "ladder": (figures.plot_ladder, table, {"deltas": deltas}),
        "risk_coverage": (figures.plot_risk_coverage, {"probe": risk_coverage(score, error)}, {}),
        "reliability": (figures.plot_reliability, calibration_report(error.astype(int), p), {}),
        "cascade": (figures.plot_cascade, cascade_report(score, error, error * (rng.random(n) < 0.5)), {}),
        "feature_effects": (figures.plot_feature_effects, effects, {}),
    }


@pytest.mark.parametrize("name", ["ladder", "risk_coverage", "reliability", "cascade", "feature_effects"])
def test_figure_is_a_deterministic_png(name, tmp_path):
    plot, data, kwargs = _inputs()[name]
    first = plot(data, tmp_path / "a" / f"{name}.png", name, **kwargs).read_bytes()
    second = plot(data, tmp_path / "b" / f"{name}.png", name, **kwargs).read_bytes()
    assert first.startswith(PNG_MAGIC) and len(first) > 5000
    assert first == second


def test_figure_guardrails(tmp_path):
    plot, data, _ = _inputs()["ladder"]
    with pytest.raises(InputError, match=".png"):
        plot(data, tmp_path / "ladder.pdf", "t")
    with pytest.raises(InputError, match="missing column"):
        plot(data.drop(columns="auroc"), tmp_path / "ladder.png", "t")
    with pytest.raises(InputError, match="at least one"):
        figures.plot_risk_coverage({}, tmp_path / "rc.png", "t")
