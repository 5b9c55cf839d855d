"""Model-free SAE metrics: reconstruction quality, sparsity, and dictionary stability.

Everything here works on numpy arrays (activations ``x`` and reconstructions ``x_hat`` as
``[n_tokens, d]``, codes as ``[n_tokens, n_features]``, dictionaries as
``[n_features, d]`` rows), so the same numbers come out whatever produced the arrays.

Conventions (chosen to match sae-lens / SAEBench; see each function):

* explained variance = ``1 - SSE / SST`` with ``SSE = sum ||x - x_hat||^2`` and
  ``SST = sum ||x - mean(x)||^2`` over all held-out tokens (sae-lens' non-legacy
  ``metrics/explained_variance``); FVU = ``1 - EV`` = ``SSE / SST``.
* a feature *fires* on a token when its code is non-zero (``!= 0``, so signed
  architectures count too); its frequency is the fraction of tokens it fires on
  (SAEBench's ``feature_density``); *dead* = frequency 0 on the held-out budget;
  *dense* = frequency above ``DENSE_THRESHOLD`` (10 % of tokens, the usual cut for
  "dense latents").
* PWMCC (pairwise maximum cosine, Paulo & Belrose 2025, "SAEs trained on the same data
  learn different features"): for every decoder direction of dictionary A the maximum
  cosine to any direction of B, averaged over A's features; symmetrized as the mean of
  the A->B and B->A values. The signed cosine is the default because SAE codes are
  non-negative, so a direction and its negation are different features; pass
  ``absolute=True`` for the sign-blind variant.

Hand-written because no installed library provides these on plain arrays: sae-lens
computes them inside its torch training/eval loops (and needs torch), SAEBench is not a
dependency, and PWMCC has no library implementation.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from itertools import combinations
from typing import Any

import numpy as np
from scipy import integrate, special

from sae_difficulty.utils.errors import InputError

DENSE_THRESHOLD = 0.1
_EPS = 1e-12


# --------------------------------------------------------------------------- reconstruction


def _as_2d(name: str, values: Any) -> np.ndarray:
    array = np.asarray(values)
    if array.ndim != 2:
        raise InputError(f"{name}: expected a 2-D array [rows, d], got shape {array.shape}")
    return array


def _check_pair(x: np.ndarray, x_hat: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    x = _as_2d("x", x)
    x_hat = _as_2d("x_hat", x_hat)
    if x.shape != x_hat.shape:
        raise InputError(f"x_hat: shape {x_hat.shape} does not match x {x.shape}")
    if x.shape[0] == 0:
        raise InputError("x: no rows to evaluate")
    return x, x_hat


@dataclass
class ReconstructionAccumulator:
    """Streams (x, x_hat) blocks and gives explained variance, FVU and MSE over all of them.

    Sums are kept in float64, and the total variance uses Chan's pairwise update of
    per-dimension means and centred sums of squares, so a large common offset in the
    activations (residual streams have one) does not cancel catastrophically.
    """

    n_rows: int = 0
    sse: float = 0.0
    mean: np.ndarray | None = None
    centred_ss: np.ndarray | None = None
    cosine_sum: float = 0.0

    def update(self, x: np.ndarray, x_hat: np.ndarray) -> None:
        x, x_hat = _check_pair(x, x_hat)
        x = x.astype(np.float64, copy=False)
        x_hat = x_hat.astype(np.float64, copy=False)
        residual = x - x_hat
        self.sse += float(np.einsum("ij,ij->", residual, residual))
        norms = np.linalg.norm(x, axis=1) * np.linalg.norm(x_hat, axis=1)
        self.cosine_sum += float(np.sum(np.einsum("ij,ij->i", x, x_hat) / np.maximum(norms, _EPS)))
        block_n = x.shape[0]
        block_mean = x.mean(axis=0)
        block_ss = ((x - block_mean) ** 2).sum(axis=0)
        if self.mean is None or self.centred_ss is None:
            self.mean, self.centred_ss = block_mean, block_ss
        else:
            total = self.n_rows + block_n
            delta = block_mean - self.mean
            self.centred_ss = self.centred_ss + block_ss + delta**2 * (self.n_rows * block_n / total)
            self.mean = self.mean + delta * (block_n / total)
        self.n_rows += block_n

    @property
    def total_variance(self) -> float:
        """Sum over tokens of ``||x - mean(x)||^2``."""
        return float(self.centred_ss.sum()) if self.centred_ss is not None else 0.0

    def result(self) -> dict[str, float]:
        """``explained_variance``, ``fvu``, ``mse`` (mean over tokens of ``||x - x_hat||^2``,
        the sae-lens training-loss convention), ``mean_cosine`` (x vs x_hat) and ``n_tokens``."""
        if self.n_rows == 0:
            raise InputError("reconstruction metrics: no rows were accumulated")
        sst = self.total_variance
        if sst <= 0.0:
            raise InputError("x: activations have zero variance; explained variance is undefined")
        fvu_value = self.sse / sst
        return {
            "explained_variance": 1.0 - fvu_value,
            "fvu": fvu_value,
            "mse": self.sse / self.n_rows,
            "mean_cosine": self.cosine_sum / self.n_rows,
            "n_tokens": self.n_rows,
        }


def explained_variance(x: np.ndarray, x_hat: np.ndarray) -> float:
    """``1 - sum ||x - x_hat||^2 / sum ||x - mean(x)||^2`` over all rows (1 = perfect, 0 = the mean)."""
    accumulator = ReconstructionAccumulator()
    accumulator.update(x, x_hat)
    return accumulator.result()["explained_variance"]


def fvu(x: np.ndarray, x_hat: np.ndarray) -> float:
    """Fraction of variance unexplained, ``1 - explained_variance(x, x_hat)``."""
    accumulator = ReconstructionAccumulator()
    accumulator.update(x, x_hat)
    return accumulator.result()["fvu"]


def loss_recovered(clean: float, spliced: float, ablated: float) -> dict[str, float]:
    """Downstream cost of splicing the reconstruction in, against zero-ablation.

    ``delta`` = spliced - clean (Δnats for the LM, ΔCRPS for Chronos), ``delta_ablated`` =
    ablated - clean, and ``fraction_recovered`` = (ablated - spliced) / (ablated - clean)
    (SAEBench's ``ce_loss_score``: 1 = as good as the clean model, 0 = as bad as ablation;
    NaN when ablation costs nothing).
    """
    gap = ablated - clean
    return {
        "loss_clean": float(clean),
        "loss_spliced": float(spliced),
        "loss_ablated": float(ablated),
        "delta": float(spliced - clean),
        "delta_ablated": float(gap),
        "fraction_recovered": float((ablated - spliced) / gap) if gap != 0 else float("nan"),
    }


# --------------------------------------------------------------------------- sparsity


def l0(codes: np.ndarray) -> float:
    """Mean number of non-zero codes per row."""
    codes = _as_2d("codes", codes)
    if codes.shape[0] == 0:
        raise InputError("codes: no rows")
    return float(np.count_nonzero(codes, axis=1).mean())


@dataclass
class FiringAccumulator:
    """Counts, per feature, the tokens it fires on (code != 0) across streamed blocks."""

    n_features: int
    counts: np.ndarray = field(init=False)
    n_tokens: int = 0

    def __post_init__(self) -> None:
        self.counts = np.zeros(self.n_features, dtype=np.int64)

    def update(self, codes: np.ndarray) -> None:
        codes = _as_2d("codes", codes)
        if codes.shape[1] != self.n_features:
            raise InputError(f"codes: {codes.shape[1]} features, expected {self.n_features}")
        self.counts += np.count_nonzero(codes, axis=0)
        self.n_tokens += codes.shape[0]

    def frequencies(self) -> np.ndarray:
        """Fraction of tokens each feature fired on (float64, [n_features])."""
        if self.n_tokens == 0:
            raise InputError("feature frequencies: no tokens were accumulated")
        return self.counts / self.n_tokens

    def mean_l0(self) -> float:
        """Mean active features per token; equals the sum of the frequencies."""
        return float(self.counts.sum() / max(self.n_tokens, 1))


def feature_frequencies(codes: np.ndarray) -> np.ndarray:
    """Fraction of rows on which each feature is non-zero."""
    codes = _as_2d("codes", codes)
    accumulator = FiringAccumulator(codes.shape[1])
    accumulator.update(codes)
    return accumulator.frequencies()


def dead_fraction(freqs: np.ndarray) -> float:
    """Fraction of features that never fired (frequency exactly 0) on the evaluated tokens."""
    freqs = np.asarray(freqs, dtype=np.float64)
    if freqs.ndim != 1 or freqs.size == 0:
        raise InputError(f"freqs: expected a non-empty 1-D array, got shape {freqs.shape}")
    return float(np.mean(freqs == 0.0))


def dense_fraction(freqs: np.ndarray, threshold: float = DENSE_THRESHOLD) -> float:
    """Fraction of features firing on more than ``threshold`` of tokens (default 10 %)."""
    freqs = np.asarray(freqs, dtype=np.float64)
    if freqs.ndim != 1 or freqs.size == 0:
        raise InputError(f"freqs: expected a non-empty 1-D array, got shape {freqs.shape}")
    if not 0.0 < threshold < 1.0:
        raise InputError(f"threshold: expected a value in (0, 1), got {threshold}")
    return float(np.mean(freqs > threshold))


# --------------------------------------------------------------------------- dictionaries


def _unit_rows(name: str, dictionary: Any) -> np.ndarray:
    rows = _as_2d(name, dictionary).astype(np.float64)
    if rows.shape[0] == 0:
        raise InputError(f"{name}: dictionary has no features")
    if not np.all(np.isfinite(rows)):
        raise InputError(f"{name}: dictionary has non-finite entries")
    norms = np.linalg.norm(rows, axis=1, keepdims=True)
    # an all-zero direction (e.g. a dead feature's zeroed decoder row) gets cosine 0 to everything
    return rows / np.maximum(norms, _EPS)


def max_cosines(
    dec_a: np.ndarray, dec_b: np.ndarray, *, absolute: bool = False, chunk_rows: int = 2048
) -> tuple[np.ndarray, np.ndarray]:
    """For each row of A its maximum cosine to the rows of B, and for each row of B to A.

    One chunked pass over ``A @ B.T`` (``chunk_rows`` rows of A at a time), so a
    16k x 16k similarity matrix is never materialized.
    """
    a = _unit_rows("dec_a", dec_a)
    b = _unit_rows("dec_b", dec_b)
    if a.shape[1] != b.shape[1]:
        raise InputError(f"dec_b: dimension {b.shape[1]} does not match dec_a ({a.shape[1]})")
    if chunk_rows < 1:
        raise InputError(f"chunk_rows: expected >= 1, got {chunk_rows}")
    best_a = np.empty(a.shape[0])
    best_b = np.full(b.shape[0], -np.inf)
    for start in range(0, a.shape[0], chunk_rows):
        sims = a[start : start + chunk_rows] @ b.T
        if absolute:
            sims = np.abs(sims)
        best_a[start : start + chunk_rows] = sims.max(axis=1)
        np.maximum(best_b, sims.max(axis=0), out=best_b)
    return best_a, best_b


def recovery_fraction(true_directions: np.ndarray, learned: np.ndarray, threshold: float = 0.9) -> float:
    """Fraction of true directions matched by some learned direction at cosine > ``threshold``."""
    best_true, _ = max_cosines(true_directions, learned)
    return float(np.mean(best_true > threshold))


def pwmcc(dec_a: np.ndarray, dec_b: np.ndarray, *, absolute: bool = False, chunk_rows: int = 2048) -> float:
    """Symmetrized pairwise maximum cosine between two dictionaries ``[n_features, d]``.

    ``0.5 * (mean_i max_j cos(a_i, b_j) + mean_j max_i cos(a_i, b_j))``; 1 when B holds
    the same directions as A in any order. Signed cosine unless ``absolute``.
    """
    best_a, best_b = max_cosines(dec_a, dec_b, absolute=absolute, chunk_rows=chunk_rows)
    return float(0.5 * (best_a.mean() + best_b.mean()))


def pwmcc_matrix(dictionaries: Sequence[np.ndarray], *, absolute: bool = False) -> np.ndarray:
    """Symmetric matrix of :func:`pwmcc` between every pair of dictionaries (diagonal computed too)."""
    count = len(dictionaries)
    matrix = np.empty((count, count))
    for i in range(count):
        for j in range(i, count):
            matrix[i, j] = matrix[j, i] = pwmcc(dictionaries[i], dictionaries[j], absolute=absolute)
    return matrix


def random_dictionary(n_features: int, d: int, rng: np.random.Generator, kind: str = "gaussian") -> np.ndarray:
    """A random dictionary ``[n_features, d]`` of unit rows.

    ``kind="gaussian"``: isotropic Gaussian rows, normalized, i.e. uniform on the sphere
    (the null of "no shared structure" for dictionaries of this shape).
    """
    if kind != "gaussian":
        raise InputError(f"kind: unknown random dictionary kind '{kind}'; expected 'gaussian'")
    if n_features < 1 or d < 1:
        raise InputError(f"random dictionary: expected n_features >= 1 and d >= 1, got {n_features}, {d}")
    rows = rng.standard_normal((n_features, d))
    return rows / np.linalg.norm(rows, axis=1, keepdims=True)


def random_dictionary_pwmcc(
    n_features: int,
    d: int,
    n_draws: int,
    seed: int,
    kind: str = "gaussian",
    *,
    n_features_other: int | None = None,
    absolute: bool = False,
) -> np.ndarray:
    """PWMCC between pairs of independent random dictionaries of the given shape, one value per draw.

    The second dictionary has ``n_features_other`` rows (default: ``n_features``), so the
    baseline can match two SAEs of different widths.
    """
    if n_draws < 1:
        raise InputError(f"n_draws: expected >= 1, got {n_draws}")
    rng = np.random.default_rng(seed)
    other = n_features if n_features_other is None else n_features_other
    values = np.empty(n_draws)
    for draw in range(n_draws):
        a = random_dictionary(n_features, d, rng, kind)
        b = random_dictionary(other, d, rng, kind)
        values[draw] = pwmcc(a, b, absolute=absolute)
    return values


def expected_random_max_cosine(n_other: int, d: int) -> float:
    """E[max_j cos(v, u_j)] for a fixed unit v and ``n_other`` independent uniform unit u_j in R^d.

    For uniform u, ``(cos + 1) / 2 ~ Beta((d-1)/2, (d-1)/2)``; with CDF F on [-1, 1],
    ``E[max] = 1 - integral_{-1}^{1} F(t)^n dt``. Since every row of a dictionary sees the
    same law, this is also the expected (one-direction and symmetrized) PWMCC of a
    dictionary against a random Gaussian one with ``n_other`` rows.
    """
    if n_other < 1 or d < 2:
        raise InputError(f"expected_random_max_cosine: expected n_other >= 1 and d >= 2, got {n_other}, {d}")
    shape = (d - 1) / 2.0

    def cdf_power(u: float) -> float:
        return float(special.betainc(shape, shape, u) ** n_other)

    # substitute t = 2u - 1; the integrand switches from 0 to 1 near the upper quantiles
    breakpoints = [float(special.betaincinv(shape, shape, q ** (1.0 / n_other))) for q in (0.01, 0.5, 0.99)]
    integral, _ = integrate.quad(cdf_power, 0.0, 1.0, points=breakpoints, limit=200)
    return 1.0 - 2.0 * integral


def stability_report(
    dictionaries: Mapping[str, np.ndarray], n_random: int = 5, seed: int = 0, *, absolute: bool = False
) -> dict[str, Any]:
    """Feature stability across SAEs (e.g. seeds) against random dictionaries of the same shapes.

    For every unordered pair (names sorted) the PWMCC, the mean and sd of ``n_random``
    random-dictionary PWMCCs of the same shapes, its analytic expectation, and the gap
    (pair - random mean). The summary gives the mean and sd (ddof=1; 0 for one pair) over
    pairs of both statistics and the mean gap. With fewer than two dictionaries there is
    nothing to compare and the summary statistics are None.
    """
    names = sorted(dictionaries)
    arrays = {name: _as_2d(f"dictionaries['{name}']", dictionaries[name]) for name in names}
    dims = {arrays[name].shape[1] for name in names}
    if len(dims) > 1:
        raise InputError(f"dictionaries: all must share the model dimension, got {sorted(dims)}")
    pairs = []
    for index, (name_a, name_b) in enumerate(combinations(names, 2)):
        a, b = arrays[name_a], arrays[name_b]
        observed = pwmcc(a, b, absolute=absolute)
        baseline = random_dictionary_pwmcc(
            a.shape[0], a.shape[1], n_random, seed + index, n_features_other=b.shape[0], absolute=absolute
        )
        expected = (
            0.5
            * (expected_random_max_cosine(b.shape[0], a.shape[1]) + expected_random_max_cosine(a.shape[0], a.shape[1]))
            if not absolute and a.shape[1] >= 2
            else None
        )
        pairs.append(
            {
                "a": name_a,
                "b": name_b,
                "n_features_a": a.shape[0],
                "n_features_b": b.shape[0],
                "pwmcc": observed,
                "random_mean": float(baseline.mean()),
                "random_sd": float(baseline.std(ddof=1)) if n_random > 1 else 0.0,
                "random_expected": expected,
                "gap": observed - float(baseline.mean()),
            }
        )

    def _mean_sd(values: list[float]) -> tuple[float | None, float | None]:
        if not values:
            return None, None
        sd = float(np.std(values, ddof=1)) if len(values) > 1 else 0.0
        return float(np.mean(values)), sd

    pwmcc_mean, pwmcc_sd = _mean_sd([p["pwmcc"] for p in pairs])
    random_mean, random_sd = _mean_sd([p["random_mean"] for p in pairs])
    gap_mean, _ = _mean_sd([p["gap"] for p in pairs])
    return {
        "names": names,
        "n_pairs": len(pairs),
        "n_random": n_random,
        "seed": seed,
        "absolute": absolute,
        "pwmcc_mean": pwmcc_mean,
        "pwmcc_sd": pwmcc_sd,
        "random_mean": random_mean,
        "random_sd": random_sd,
        "gap_mean": gap_mean,
        "pairs": pairs,
    }
