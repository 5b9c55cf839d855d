"""Fourier ground truth for modular addition: the basis of Z_p, key frequencies, and overlap.

A transformer that has grokked ``(a + b) mod p`` computes with a few *key frequencies*
``k``: it embeds each number token along ``cos(2 pi k a / p)`` and ``sin(2 pi k a / p)``
and reads the answer out through the same waves (Nanda et al. 2023). This module
works on plain arrays:

* :func:`fourier_basis`: the orthonormal real Fourier basis of functions on ``Z_p``;
* :func:`frequency_norms` / :func:`key_frequencies`: how much of a token-indexed
  matrix (e.g. the number-token rows of ``W_E``) lies on each frequency;
* :func:`token_directions`: cos/sin waves over the tokens mapped into the residual
  space through a token-indexed matrix (``W_E`` rows or ``W_U`` columns);
* :func:`sum_feature_directions`: the directions along which activations vary with
  ``cos/sin(2 pi k (a + b) / p)`` (least-squares slopes over all inputs);
* :func:`fourier_overlap`: for each ground-truth direction the best ``|cos|`` with any
  dictionary row, and :func:`expected_random_max_abs_cosine`, its closed-form value for
  a random (uniform on the sphere) dictionary.

Hand-written because this analysis exists only inside research notebooks (numpy here
keeps it model-free and testable).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy import integrate, special

from sae_difficulty.utils.errors import InputError

_EPS = 1e-12


def _check_modulus(p: int) -> None:
    if isinstance(p, bool) or not isinstance(p, (int, np.integer)) or p < 3 or p % 2 == 0:
        raise InputError(f"p: expected an odd integer >= 3, got {p!r}")


def n_frequencies(p: int) -> int:
    """Non-constant frequencies of ``Z_p`` for odd ``p``: ``k = 1 .. (p - 1) / 2``."""
    _check_modulus(p)
    return (p - 1) // 2


def fourier_basis(p: int) -> tuple[np.ndarray, list[str]]:
    """Orthonormal real Fourier basis of ``Z_p``: rows ``[p, p]`` and their labels.

    Row 0 is the constant ``1/sqrt(p)``; rows ``2k-1`` and ``2k`` are
    ``sqrt(2/p) cos(2 pi k x / p)`` and ``sqrt(2/p) sin(2 pi k x / p)`` for
    ``k = 1 .. (p-1)/2``. ``basis @ basis.T`` is the identity.
    """
    _check_modulus(p)
    x = np.arange(p)
    rows, labels = [np.full(p, 1.0 / np.sqrt(p))], ["const"]
    for k in range(1, n_frequencies(p) + 1):
        angle = 2.0 * np.pi * k * x / p
        rows += [np.sqrt(2.0 / p) * np.cos(angle), np.sqrt(2.0 / p) * np.sin(angle)]
        labels += [f"cos{k}", f"sin{k}"]
    return np.stack(rows), labels


def fourier_vectors(p: int, frequencies: Any) -> np.ndarray:
    """Unit cos and sin waves over ``Z_p`` for each frequency: ``[2 * len(frequencies), p]``,
    ordered ``cos k1, sin k1, cos k2, sin k2, ...``."""
    frequencies = _checked_frequencies(p, frequencies)
    basis, _ = fourier_basis(p)
    rows = [basis[2 * k - 1 + offset] for k in frequencies for offset in (0, 1)]
    return np.stack(rows)


def _checked_frequencies(p: int, frequencies: Any) -> np.ndarray:
    values = np.asarray(frequencies)
    if values.ndim != 1 or values.size == 0 or not np.issubdtype(values.dtype, np.integer):
        raise InputError(f"frequencies: expected a non-empty 1-D list of integers, got {frequencies!r}")
    top = n_frequencies(p)
    if values.min() < 1 or values.max() > top:
        raise InputError(f"frequencies: expected values in 1..{top} for p={p}, got {values.tolist()}")
    return values.astype(np.int64)


def _token_matrix(name: str, matrix: Any, p: int) -> np.ndarray:
    values = np.asarray(matrix, dtype=np.float64)
    if values.ndim != 2 or values.shape[0] != p:
        raise InputError(f"{name}: expected a token-indexed matrix [p={p}, d], got shape {values.shape}")
    if not np.all(np.isfinite(values)):
        raise InputError(f"{name}: contains non-finite values")
    return values


def frequency_norms(matrix: Any, p: int) -> np.ndarray:
    """Norm of a token-indexed matrix ``[p, d]`` on each frequency ``k = 1 .. (p-1)/2``.

    ``sqrt(||c_k^T M||^2 + ||s_k^T M||^2)`` with ``c_k, s_k`` the unit cos/sin waves:
    the Fourier spectrum of ``W_E`` (Nanda et al.'s embedding plot), constant term left out.
    """
    values = _token_matrix("matrix", matrix, p)
    basis, _ = fourier_basis(p)
    coefficients = basis @ values  # [p, d]: row j = component of M along basis row j
    squared = np.sum(coefficients**2, axis=1)
    return np.sqrt(squared[1::2] + squared[2::2])


def key_frequencies(matrix: Any, p: int, n: int) -> np.ndarray:
    """The ``n`` frequencies with the largest :func:`frequency_norms` (largest first; ties to the lower k)."""
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or not 1 <= n <= n_frequencies(p):
        raise InputError(f"n_key_frequencies: expected an integer in 1..{n_frequencies(p)} for p={p}, got {n!r}")
    norms = frequency_norms(matrix, p)
    order = np.lexsort((np.arange(norms.size), -norms))  # by norm descending, then k ascending
    return (order[:n] + 1).astype(np.int64)


def token_directions(token_matrix: Any, p: int, frequencies: Any) -> np.ndarray:
    """Residual-space directions ``[2n, d]`` of the cos/sin waves of ``frequencies``.

    ``token_matrix`` is indexed by token: ``W_E[:p]`` gives ``W_E^T c_k`` (what the waves
    write into the residual stream when embedded), ``W_U.T`` gives ``W_U c_k`` (the
    residual direction whose readout is the wave over answers).
    """
    values = _token_matrix("token_matrix", token_matrix, p)
    return fourier_vectors(p, frequencies) @ values


def sum_feature_directions(activations: Any, pairs: Any, p: int, frequencies: Any) -> np.ndarray:
    """Directions ``[2n, d]`` along which activations track ``cos/sin(2 pi k (a + b) / p)``.

    For each wave ``f`` over the inputs, the least-squares slope ``X_c^T f / f^T f`` of
    the centred activations ``X_c`` (rows = inputs ``pairs [N, 2]``). Over all ``p*p``
    inputs the waves are centred and mutually orthogonal, so the slopes are those of
    the joint regression.
    """
    x = np.asarray(activations, dtype=np.float64)
    pairs = np.asarray(pairs)
    if x.ndim != 2 or pairs.ndim != 2 or pairs.shape != (x.shape[0], 2):
        raise InputError(f"activations/pairs: expected [N, d] and [N, 2] with the same N, got {x.shape} and {pairs.shape}")
    frequencies = _checked_frequencies(p, frequencies)
    centred = x - x.mean(axis=0)
    total = (pairs[:, 0] + pairs[:, 1]) % p
    rows = []
    for k in frequencies:
        angle = 2.0 * np.pi * k * total / p
        for wave in (np.cos(angle), np.sin(angle)):
            wave = wave - wave.mean()
            rows.append(centred.T @ wave / max(float(wave @ wave), _EPS))
    return np.stack(rows)


def _unit_rows(name: str, rows: Any) -> np.ndarray:
    values = np.asarray(rows, dtype=np.float64)
    if values.ndim != 2 or values.shape[0] == 0:
        raise InputError(f"{name}: expected a non-empty 2-D array [rows, d], got shape {values.shape}")
    if not np.all(np.isfinite(values)):
        raise InputError(f"{name}: contains non-finite values")
    return values / np.maximum(np.linalg.norm(values, axis=1, keepdims=True), _EPS)


def max_abs_cosines(directions: Any, dictionary: Any) -> np.ndarray:
    """For each ground-truth direction, its largest ``|cos|`` with any dictionary row."""
    truth = _unit_rows("directions", directions)
    rows = _unit_rows("dictionary", dictionary)
    if truth.shape[1] != rows.shape[1]:
        raise InputError(f"dictionary: dimension {rows.shape[1]} does not match the directions ({truth.shape[1]})")
    return np.abs(truth @ rows.T).max(axis=1)


def fourier_overlap(directions: Any, dictionary: Any) -> float:
    """Mean over ground-truth directions of the best ``|cos|`` with a dictionary row (1 = all recovered).

    Sign-blind because a direction and its negation carry the same Fourier component
    (an SAE with non-negative codes needs both to represent one wave).
    """
    return float(max_abs_cosines(directions, dictionary).mean())


def expected_random_max_abs_cosine(n_rows: int, d: int) -> float:
    """``E[max_j |cos(v, u_j)|]`` for a fixed unit ``v`` and ``n_rows`` uniform unit ``u_j`` in ``R^d``.

    ``cos^2 ~ Beta(1/2, (d-1)/2)`` for a uniform direction, so ``P(|cos| <= t) =
    I_{t^2}(1/2, (d-1)/2)`` and ``E[max] = integral_0^1 1 - P(|cos| <= t)^n dt``: the
    overlap a random Gaussian dictionary of ``n_rows`` features gets with any direction.
    """
    if n_rows < 1 or d < 2:
        raise InputError(f"expected_random_max_abs_cosine: expected n_rows >= 1 and d >= 2, got {n_rows}, {d}")
    shape = (d - 1) / 2.0

    def tail(t: float) -> float:
        return 1.0 - float(special.betainc(0.5, shape, t * t) ** n_rows)

    # the integrand drops from 1 to 0 around the upper quantiles of |cos|: tell quad where
    breakpoints = [float(np.sqrt(special.betaincinv(0.5, shape, q ** (1.0 / n_rows)))) for q in (0.01, 0.5, 0.99)]
    value, _ = integrate.quad(tail, 0.0, 1.0, points=breakpoints, limit=200)
    return float(value)
