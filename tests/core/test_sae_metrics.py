"""core.sae_metrics: reconstruction, sparsity and dictionary-stability numbers on planted arrays."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from sae_difficulty.core import sae_metrics as m
from sae_difficulty.utils.errors import InputError


def _unit_rows(rng: np.random.Generator, n: int, d: int) -> np.ndarray:
    rows = rng.standard_normal((n, d))
    return rows / np.linalg.norm(rows, axis=1, keepdims=True)


def test_core_module_does_not_import_torch() -> None:
    code = "import sys, sae_difficulty.core.sae_metrics; assert 'torch' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)


def test_explained_variance_and_fvu_on_planted_noise() -> None:
    rng = np.random.default_rng(0)
    x = rng.standard_normal((20_000, 8)) * 2.0 + 5.0  # per-dimension variance 4
    assert m.explained_variance(x, x) == pytest.approx(1.0)
    assert m.explained_variance(x, np.broadcast_to(x.mean(0), x.shape)) == pytest.approx(0.0, abs=1e-12)
    noisy = x + rng.standard_normal(x.shape)  # noise variance 1 -> EV = 1 - 1/4
    assert m.explained_variance(x, noisy) == pytest.approx(0.75, abs=0.01)
    assert m.fvu(x, noisy) == pytest.approx(1 - m.explained_variance(x, noisy))


def test_streamed_accumulator_matches_one_shot_despite_large_offset() -> None:
    rng = np.random.default_rng(1)
    x = (rng.standard_normal((5000, 16)) + 1e4).astype(np.float32)  # residual-stream-like offset
    x_hat = x + rng.standard_normal(x.shape).astype(np.float32) * 0.5
    streamed = m.ReconstructionAccumulator()
    for start in range(0, len(x), 333):
        streamed.update(x[start : start + 333], x_hat[start : start + 333])
    exact_sst = ((x.astype(np.float64) - x.astype(np.float64).mean(0)) ** 2).sum()
    assert streamed.total_variance == pytest.approx(exact_sst, rel=1e-9)
    assert streamed.result()["explained_variance"] == pytest.approx(m.explained_variance(x, x_hat), rel=1e-9)
    assert streamed.result()["explained_variance"] == pytest.approx(0.75, abs=0.01)


def test_sparsity_metrics_on_planted_codes() -> None:
    codes = np.zeros((1000, 6))
    codes[:, 0] = 1.0  # fires always -> dense
    codes[::4, 1] = 2.0  # fires on 25 % -> dense
    codes[::20, 2] = 0.5  # fires on 5 % -> alive, not dense
    codes[::50, 3] = -1.0  # signed codes count as firing
    freqs = m.feature_frequencies(codes)
    np.testing.assert_allclose(freqs, [1.0, 0.25, 0.05, 0.02, 0.0, 0.0])
    assert m.l0(codes) == pytest.approx(1.32)
    assert m.dead_fraction(freqs) == pytest.approx(2 / 6)
    assert m.dense_fraction(freqs) == pytest.approx(2 / 6)
    accumulator = m.FiringAccumulator(6)
    accumulator.update(codes[:300])
    accumulator.update(codes[300:])
    np.testing.assert_array_equal(accumulator.frequencies(), freqs)
    assert accumulator.mean_l0() == pytest.approx(freqs.sum())


def test_pwmcc_identity_permutation_and_sign() -> None:
    rng = np.random.default_rng(2)
    dictionary = _unit_rows(rng, 300, 24) * rng.uniform(0.5, 3.0, (300, 1))  # norms must not matter
    assert m.pwmcc(dictionary, dictionary) == pytest.approx(1.0)
    assert m.pwmcc(dictionary, dictionary[rng.permutation(300)]) == pytest.approx(1.0)
    assert m.pwmcc(dictionary, -dictionary) < 0.9  # signed by default: a negated direction is another feature
    assert m.pwmcc(dictionary, -dictionary, absolute=True) == pytest.approx(1.0)


def test_pwmcc_chunking_does_not_change_the_result() -> None:
    rng = np.random.default_rng(3)
    a, b = _unit_rows(rng, 257, 16), _unit_rows(rng, 190, 16)
    assert m.pwmcc(a, b, chunk_rows=7) == pytest.approx(m.pwmcc(a, b, chunk_rows=10_000), abs=1e-15)


def test_pwmcc_is_symmetrized_over_both_directions() -> None:
    rng = np.random.default_rng(4)
    base = _unit_rows(rng, 50, 16)
    superset = np.vstack([base, _unit_rows(rng, 50, 16)])
    best_a, best_b = m.max_cosines(base, superset)
    assert best_a.mean() == pytest.approx(1.0)  # every base direction is in the superset
    assert best_b.mean() < 0.9  # but half of the superset is not in the base
    assert m.pwmcc(base, superset) == pytest.approx(0.5 * (best_a.mean() + best_b.mean()))
    assert m.pwmcc(base, superset) == pytest.approx(m.pwmcc(superset, base))


@pytest.mark.parametrize(("n_features", "d"), [(128, 32), (64, 8)])
def test_random_dictionary_pwmcc_matches_its_expectation(n_features: int, d: int) -> None:
    draws = m.random_dictionary_pwmcc(n_features, d, n_draws=40, seed=0)
    expected = m.expected_random_max_cosine(n_features, d)
    standard_error = draws.std(ddof=1) / np.sqrt(len(draws))
    assert abs(draws.mean() - expected) < 5 * standard_error + 1e-3
    assert 0.0 < expected < 1.0


def test_expected_random_max_cosine_grows_with_width_and_shrinks_with_dimension() -> None:
    assert m.expected_random_max_cosine(1, 16) == pytest.approx(0.0, abs=1e-9)  # one random cosine has mean 0
    assert m.expected_random_max_cosine(1024, 32) > m.expected_random_max_cosine(64, 32)
    assert m.expected_random_max_cosine(256, 128) < m.expected_random_max_cosine(256, 16)


def test_pwmcc_matrix_is_symmetric_with_unit_diagonal() -> None:
    rng = np.random.default_rng(5)
    dictionaries = [_unit_rows(rng, 40, 12) for _ in range(3)]
    matrix = m.pwmcc_matrix(dictionaries)
    np.testing.assert_allclose(np.diag(matrix), 1.0)
    np.testing.assert_allclose(matrix, matrix.T)
    assert matrix[0, 1] == pytest.approx(m.pwmcc(dictionaries[0], dictionaries[1]))


def test_stability_report_separates_shared_from_random_dictionaries() -> None:
    rng = np.random.default_rng(6)
    base = _unit_rows(rng, 96, 32)
    dictionaries = {f"seed{i}": base[rng.permutation(96)] + 0.02 * rng.standard_normal((96, 32)) for i in range(3)}
    report = m.stability_report(dictionaries, n_random=4, seed=0)
    assert report["n_pairs"] == 3 and report["names"] == ["seed0", "seed1", "seed2"]
    assert report["pwmcc_mean"] > 0.95
    assert report["random_mean"] == pytest.approx(m.expected_random_max_cosine(96, 32), abs=0.02)
    assert report["gap_mean"] > 0.4
    unrelated = m.stability_report({"a": _unit_rows(rng, 96, 32), "b": _unit_rows(rng, 96, 32)}, n_random=4)
    assert abs(unrelated["gap_mean"]) < 0.05
    assert m.stability_report({"only": base})["pwmcc_mean"] is None


def test_loss_recovered() -> None:
    result = m.loss_recovered(clean=2.0, spliced=2.5, ablated=7.0)
    assert result["delta"] == pytest.approx(0.5)
    assert result["fraction_recovered"] == pytest.approx(0.9)


def test_bad_inputs_give_one_line_errors() -> None:
    rng = np.random.default_rng(7)
    with pytest.raises(InputError, match="dimension") as error:
        m.pwmcc(_unit_rows(rng, 4, 3), _unit_rows(rng, 4, 5))
    assert "\n" not in str(error.value)
    with pytest.raises(InputError, match="zero variance"):
        m.explained_variance(np.ones((5, 2)), np.ones((5, 2)))
    with pytest.raises(InputError, match="kind"):
        m.random_dictionary_pwmcc(4, 3, 1, 0, kind="uniform")
    with pytest.raises(InputError, match="2-D"):
        m.l0(np.zeros(5))
