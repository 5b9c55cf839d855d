"""core.seed_stability: PWMCC across seeds, random controls, and the seed-bootstrap gap."""

from __future__ import annotations

import numpy as np
import pytest

from sae_difficulty.core import seed_stability as s
from sae_difficulty.core.sae_metrics import expected_random_max_cosine, pwmcc
from sae_difficulty.utils.errors import InputError

D = 32
N_FEATURES = 128


def _unit(rng: np.random.Generator, n: int, d: int = D) -> np.ndarray:
    rows = rng.standard_normal((n, d))
    return rows / np.linalg.norm(rows, axis=1, keepdims=True)


def test_pwmcc_of_a_dictionary_with_itself_and_permuted_copies_is_one() -> None:
    rng = np.random.default_rng(0)
    dictionary = _unit(rng, N_FEATURES)
    assert pwmcc(dictionary, dictionary) == pytest.approx(1.0, abs=1e-12)
    rows_permuted = dictionary[rng.permutation(N_FEATURES)]  # features in another order
    assert pwmcc(dictionary, rows_permuted) == pytest.approx(1.0, abs=1e-12)
    # the column-permuted layout ([d, n_features], features as columns) describes the same features
    columns = dictionary.T[:, rng.permutation(N_FEATURES)]
    assert pwmcc(dictionary, columns.T) == pytest.approx(1.0, abs=1e-12)
    # a rescaled copy is the same dictionary too; a genuinely different one is not
    assert pwmcc(dictionary, 5.0 * rows_permuted) == pytest.approx(1.0, abs=1e-12)
    assert pwmcc(dictionary, _unit(rng, N_FEATURES)) < 0.7


def test_pwmcc_of_independent_random_dictionaries_matches_the_closed_form() -> None:
    rng = np.random.default_rng(1)
    values = [pwmcc(_unit(rng, N_FEATURES), _unit(rng, N_FEATURES)) for _ in range(60)]
    expected = expected_random_max_cosine(N_FEATURES, D)
    assert np.mean(values) == pytest.approx(expected, abs=0.005)
    # the baseline is sizeable: far from 0 for a wide dictionary in a small space
    assert expected > 0.4


def test_shuffled_decoder_keeps_rows_statistics_and_loses_directions() -> None:
    rng = np.random.default_rng(2)
    dictionary = _unit(rng, N_FEATURES) * rng.uniform(0.5, 2.0, size=(N_FEATURES, 1))
    shuffled = s.shuffled_decoder(dictionary, np.random.default_rng(3))
    np.testing.assert_allclose(np.sort(shuffled, axis=1), np.sort(dictionary, axis=1))
    assert pwmcc(dictionary, shuffled) < 0.7


def _seed_family(rng: np.random.Generator, shared: np.ndarray, n_seeds: int, noise: float) -> dict[str, np.ndarray]:
    """Dictionaries that share ``shared`` directions (permuted, perturbed) plus their own random rows."""
    family = {}
    for seed in range(n_seeds):
        own = _unit(rng, N_FEATURES - len(shared))
        rows = np.vstack([shared + noise * rng.standard_normal(shared.shape), own])
        family[f"s{seed}"] = rows[rng.permutation(N_FEATURES)]
    return family


def test_stability_with_controls_separates_shared_from_random_dictionaries() -> None:
    rng = np.random.default_rng(4)
    stable = s.stability_with_controls(_seed_family(rng, _unit(rng, 96), 4, 0.01), 3, 300, 0)
    unstable = s.stability_with_controls({f"s{i}": _unit(rng, N_FEATURES) for i in range(4)}, 3, 300, 0)
    assert stable["names"] == ["s0", "s1", "s2", "s3"] and len(stable["pairs"]) == 6
    np.testing.assert_allclose(np.diag(stable["pwmcc_matrix"]), 1.0)
    for kind in s.CONTROLS:
        control = stable["controls"][kind]
        assert control["mean"] == pytest.approx(stable["gaussian_expected"], abs=0.03)
        assert control["gap_ci_low"] > 0.15  # planted shared directions: stable beyond chance
        random_gap = unstable["controls"][kind]
        assert abs(random_gap["gap"]) < 0.02 and random_gap["gap_ci_low"] < 0.01  # random seeds: no gap
    assert stable["pwmcc_mean"] > unstable["pwmcc_mean"] + 0.15


def test_seed_bootstrap_resamples_seeds_not_pairs() -> None:
    # seed 0 agrees with everyone (0.9), the others only with seed 0: the CI must reflect the seed structure
    values = np.full((4, 4), 0.3)
    values[0, :] = values[:, 0] = 0.9
    point, low, high = s.seed_bootstrap_pair_mean(values, 2000, 0)
    assert point == pytest.approx(np.mean([0.9] * 3 + [0.3] * 3))
    assert low < point < high and low >= 0.3 - 1e-12 and high <= 0.9 + 1e-12
    two = s.seed_bootstrap_pair_mean(np.array([[1.0, 0.4], [0.4, 1.0]]), 100, 0)
    assert two == pytest.approx((0.4, 0.4, 0.4))


def test_score_with_controls_reports_the_gap_of_a_planted_score() -> None:
    rng = np.random.default_rng(5)
    target = _unit(rng, 1)[0]
    dictionaries = {f"s{i}": np.vstack([target, _unit(rng, 31)]) for i in range(3)}
    result = s.score_with_controls(dictionaries, lambda d: float(np.abs(d @ target / np.linalg.norm(d, axis=1)).max()), 4, 200, 0)
    assert result["mean"] == pytest.approx(1.0)
    for kind in s.CONTROLS:
        assert result["controls"][kind]["mean"] < 0.8
        assert result["controls"][kind]["gap_ci_low"] > 0.2


def test_bad_inputs_give_one_line_errors() -> None:
    rng = np.random.default_rng(6)
    with pytest.raises(InputError, match="at least two"):
        s.stability_with_controls({"only": _unit(rng, 8)}, 2, 100, 0)
    with pytest.raises(InputError, match="unknown kind"):
        s.control_dictionary(_unit(rng, 8), "uniform", rng)
    with pytest.raises(InputError, match="square"):
        s.seed_bootstrap_pair_mean(np.ones((2, 3)), 10, 0)
