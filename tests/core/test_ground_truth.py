"""Stability across seeds against recovery of a planted dictionary, feature by feature.

Planted dictionaries: a true dictionary T; each seed's dictionary mixes rows of T with
rows that are not true features. Whether the stable rows are the true ones (or the
false ones) is planted, so the correlation, the detector and the verdict must follow.
"""

from __future__ import annotations

import numpy as np
import pytest

from sae_difficulty.core import ground_truth as gt
from sae_difficulty.utils.errors import InputError

D = 32


def _unit(rows: np.ndarray) -> np.ndarray:
    return rows / np.linalg.norm(rows, axis=1, keepdims=True)


def _random(n: int, rng: np.random.Generator) -> np.ndarray:
    return _unit(rng.standard_normal((n, D)))


def test_best_matches_find_the_planted_row_and_ignore_the_sign():
    rng = np.random.default_rng(0)
    reference = _random(10, rng)
    learned = np.vstack([-reference[3], reference[7] * 2.0])
    values, index = gt.best_matches(learned, reference)
    assert index.tolist() == [3, 7] and values == pytest.approx([1.0, 1.0])


def test_a_feature_absent_from_every_other_seed_is_not_stable():
    rng = np.random.default_rng(1)
    shared = _random(6, rng)
    lonely = _random(1, rng)  # only in seed 0
    half = _random(1, rng)  # in seeds 0 and 1, not in seed 2
    seeds = [np.vstack([shared, lonely, half]), np.vstack([shared[::-1], half, _random(1, rng)]),
             np.vstack([shared, _random(2, rng)])]  # fmt: skip
    matches = gt.cross_seed_matches(seeds)
    stable = gt.is_stable(matches[0], threshold=0.9)
    assert stable[:6].all()  # every other seed learned the shared rows
    assert not stable[6]  # the lonely feature matches nothing elsewhere
    assert not stable[7]  # one other seed agrees, not all: not stable
    assert gt.stability_scores(matches[0])[6] < 0.9


def _seed_features(dictionaries: list[np.ndarray], truth: np.ndarray) -> list[gt.SeedFeatures]:
    matches = gt.cross_seed_matches(dictionaries)
    return [gt.SeedFeatures(m, gt.best_matches(d, truth)[0], np.ones(len(d), dtype=bool)) for m, d in zip(matches, dictionaries)]


def _cell(stable_are_true: bool, rng: np.random.Generator, n_seeds: int = 4) -> list[gt.SeedFeatures]:
    """Each seed: 12 rows shared by all seeds and 12 rows of its own; either the shared rows are
    true features (and the own rows random) or the own rows are (different) true features."""
    truth = _random(200, rng)
    shared = truth[:12] if stable_are_true else _random(12, rng)
    dictionaries = []
    for s in range(n_seeds):
        own = _random(12, rng) if stable_are_true else truth[12 + 12 * s : 24 + 12 * s]
        dictionaries.append(np.vstack([shared, own]))
    return _seed_features(dictionaries, truth)


def test_stable_true_features_give_a_positive_correlation_a_precise_detector_and_that_verdict():
    rng = np.random.default_rng(2)
    cells = {"a": _cell(True, rng), "b": _cell(True, rng)}
    result = gt.stability_vs_recovery(cells, 0.9, 0.9, n_boot=200, seed=0)
    entry = result["cells"]["a"]
    assert entry["precision"] == 1.0 and entry["true_among_unstable"] == 0.0 and entry["lift"] == 1.0
    assert result["mean_spearman"] > 0.5 and result["mean_spearman_ci95"][0] > 0
    verdict = gt.stability_verdict(result["mean_spearman_ci95"], result["mean_spearman_ci90"], 0.1)
    assert verdict == gt.PREDICTS


def test_stable_false_features_make_stability_misleading():
    rng = np.random.default_rng(3)
    cells = {"a": _cell(False, rng), "b": _cell(False, rng)}
    result = gt.stability_vs_recovery(cells, 0.9, 0.9, n_boot=200, seed=0)
    assert result["cells"]["a"]["precision"] == 0.0 and result["cells"]["a"]["true_among_unstable"] == 1.0
    assert result["mean_spearman_ci95"][1] < 0
    assert gt.stability_verdict(result["mean_spearman_ci95"], result["mean_spearman_ci90"], 0.1) == gt.MISLEADS


def test_unrelated_stability_and_recovery_is_equivalent_within_the_margin():
    rng = np.random.default_rng(4)
    n = 400
    cells = {}
    for name in ("a", "b"):
        seeds = []
        for _ in range(5):
            matches = rng.uniform(0.2, 1.0, size=(n, 4))
            seeds.append(gt.SeedFeatures(matches, rng.uniform(0.2, 1.0, size=n), np.ones(n, dtype=bool)))
        cells[name] = seeds
    result = gt.stability_vs_recovery(cells, 0.9, 0.9, n_boot=300, seed=1)
    verdict = gt.stability_verdict(result["mean_spearman_ci95"], result["mean_spearman_ci90"], 0.1)
    assert verdict == gt.equivalent_label(0.1)  # 2 x 5 x 400 unrelated features pin rho near 0


def test_dead_features_are_left_out_of_the_analysis():
    rng = np.random.default_rng(5)
    seeds = _cell(True, rng)
    # plant dead features that would contradict the relation if counted: stable-looking but not true
    dead = [gt.SeedFeatures(np.vstack([s.matches, np.ones((5, s.matches.shape[1]))]), np.concatenate([s.recovery, np.zeros(5)]),
                            np.concatenate([s.alive, np.zeros(5, dtype=bool)])) for s in seeds]  # fmt: skip
    assert gt.group_statistics(dead, 0.9, 0.9) == gt.group_statistics(seeds, 0.9, 0.9)


def test_bad_inputs_are_one_line_errors():
    with pytest.raises(InputError, match="at least two seeds"):
        gt.cross_seed_matches([np.eye(3)])
    with pytest.raises(InputError, match="equivalence_margin"):
        gt.stability_verdict((0.1, 0.2), (0.1, 0.2), 0.0)
    with pytest.raises(InputError, match="dimension"):
        gt.best_matches(np.eye(3), np.eye(4))
