"""The one bootstrap/percentile helper pair of the SAE evaluations (``core.stats``)."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats as sps

from sae_difficulty.core.stats import bootstrap_indices, percentile_interval
from sae_difficulty.utils.errors import InputError


def test_indices_are_scipys_resamples():
    values = np.random.default_rng(3).normal(size=40)
    scipy = sps.bootstrap((values,), np.mean, n_resamples=300, vectorized=True, method="percentile",
                          rng=np.random.default_rng(11))  # fmt: skip
    ours = values[bootstrap_indices(values.size, 300, np.random.default_rng(11))].mean(axis=1)
    np.testing.assert_array_equal(ours, scipy.bootstrap_distribution)
    low, high = percentile_interval(ours)
    assert low == pytest.approx(scipy.confidence_interval.low, rel=1e-12)
    assert high == pytest.approx(scipy.confidence_interval.high, rel=1e-12)


def test_interval_is_numpys_2_5_and_97_5_percentiles_of_the_finite_replicates():
    replicates = np.random.default_rng(0).normal(size=1001)
    assert percentile_interval(replicates) == tuple(np.percentile(replicates, [2.5, 97.5]))
    with_nan = np.append(replicates, [np.nan, np.inf])
    assert percentile_interval(with_nan) == percentile_interval(replicates)
    assert percentile_interval(replicates, level=0.5) == tuple(np.percentile(replicates, [25, 75]))
    assert all(np.isnan(percentile_interval([np.nan, np.nan])))
    with pytest.raises(InputError, match="level"):
        percentile_interval(replicates, level=95)
