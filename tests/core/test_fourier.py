"""core.fourier: the Fourier basis of Z_p, key frequencies of a planted embedding, and overlap."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from sae_difficulty.core import fourier
from sae_difficulty.utils.errors import InputError

P = 23
D = 32


def _planted_embedding(rng: np.random.Generator, frequencies: list[int], noise: float = 0.05) -> np.ndarray:
    """W_E[:p] that writes the cos/sin waves of ``frequencies`` along random residual directions, plus noise."""
    waves = fourier.fourier_vectors(P, frequencies)  # [2n, p]
    write = rng.standard_normal((len(waves), D))
    return waves.T @ write + noise * rng.standard_normal((P, D))


def test_core_fourier_does_not_import_torch() -> None:
    code = "import sys, sae_difficulty.core.fourier, sae_difficulty.core.seed_stability; assert 'torch' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)


def test_fourier_basis_is_orthonormal_and_labelled() -> None:
    basis, labels = fourier.fourier_basis(P)
    assert basis.shape == (P, P)
    np.testing.assert_allclose(basis @ basis.T, np.eye(P), atol=1e-12)
    assert labels[:3] == ["const", "cos1", "sin1"] and labels[-1] == f"sin{(P - 1) // 2}"


def test_key_frequencies_recover_the_planted_ones() -> None:
    rng = np.random.default_rng(0)
    planted = [3, 7, 10]
    embedding = _planted_embedding(rng, planted)
    norms = fourier.frequency_norms(embedding, P)
    assert norms.shape == ((P - 1) // 2,)
    assert sorted(fourier.key_frequencies(embedding, P, 3).tolist()) == planted
    others = np.delete(norms, np.array(planted) - 1)
    assert norms[np.array(planted) - 1].min() > 5 * others.max()


def test_overlap_of_the_exact_fourier_directions_is_one() -> None:
    rng = np.random.default_rng(1)
    embedding = _planted_embedding(rng, [2, 5], noise=0.0)
    directions = fourier.token_directions(embedding, P, [2, 5])
    extra = rng.standard_normal((60, D))
    # the exact directions hidden among random rows, negated and rescaled: |cos| ignores sign and norm
    dictionary = np.vstack([extra[:30], -3.0 * directions, extra[30:]])
    assert fourier.fourier_overlap(directions, dictionary) == pytest.approx(1.0, abs=1e-12)
    # in the token space itself, the dictionary of cos/sin waves recovers the exact Fourier basis
    waves = fourier.fourier_vectors(P, [1, 4, 9])
    assert fourier.fourier_overlap(waves, fourier.fourier_basis(P)[0]) == pytest.approx(1.0, abs=1e-12)


def test_overlap_of_random_dictionaries_is_low_and_matches_closed_form() -> None:
    rng = np.random.default_rng(2)
    directions = fourier.token_directions(_planted_embedding(rng, [4, 8]), P, [4, 8])
    n_rows = 256
    values = [fourier.fourier_overlap(directions, rng.standard_normal((n_rows, D))) for _ in range(200)]
    expected = fourier.expected_random_max_abs_cosine(n_rows, D)
    assert np.mean(values) == pytest.approx(expected, abs=0.01)
    assert expected < 0.75  # well below a recovered direction's 1
    # the closed form grows with the dictionary's width and shrinks with the dimension
    assert fourier.expected_random_max_abs_cosine(4 * n_rows, D) > expected > fourier.expected_random_max_abs_cosine(n_rows, 4 * D)


def test_sum_feature_directions_find_the_planted_wave_directions() -> None:
    rng = np.random.default_rng(3)
    a, b = np.divmod(np.arange(P * P), P)
    pairs = np.stack([a, b], axis=1)
    planted = rng.standard_normal((2, D))
    angle = 2 * np.pi * 6 * (a + b) / P
    activations = np.cos(angle)[:, None] * planted[0] + np.sin(angle)[:, None] * planted[1]
    activations += 0.1 * rng.standard_normal(activations.shape) + 4.0  # offset: the slopes must centre
    directions = fourier.sum_feature_directions(activations, pairs, P, [6, 2])
    np.testing.assert_allclose(directions[:2], planted, atol=0.02)
    assert np.abs(directions[2:]).max() < 0.05  # frequency 2 is absent


def test_bad_inputs_give_one_line_errors() -> None:
    with pytest.raises(InputError, match="odd integer"):
        fourier.fourier_basis(24)
    with pytest.raises(InputError, match=r"values in 1\.\.11"):
        fourier.fourier_vectors(P, [12])
    with pytest.raises(InputError, match="token-indexed"):
        fourier.frequency_norms(np.zeros((P + 1, D)), P)
    with pytest.raises(InputError, match="n_key_frequencies"):
        fourier.key_frequencies(np.ones((P, D)), P, 12)
    with pytest.raises(InputError, match="dimension"):
        fourier.fourier_overlap(np.ones((2, D)), np.ones((3, D + 1)))
