"""The probe ladder on Gaussian blocks with a planted, analytically known AUROC gain."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats as sps
from sklearn.model_selection import StratifiedKFold

from sae_difficulty.core.probe import RUNGS, run_ladder
from sae_difficulty.utils.errors import InputError
from sae_difficulty.utils.io import dumps, read_json, write_experiment

MU_CHEAP = 0.8  # class shift of the one informative cheap column
MU_SAE = 1.0  # class shift of the one informative SAE column (the planted signal)
N_NOISE = 8


def planted_blocks(n: int, seed: int, mu_sae: float = MU_SAE) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """Balanced labels; cheap and SAE blocks each carry one shifted unit-variance column.

    With independent equal-variance Gaussian classes the Bayes score is linear (so
    logistic regression is well specified) and its AUROC is Φ(‖μ‖/√2).
    """
    rng = np.random.default_rng(seed)
    y = np.zeros(n, dtype=int)
    y[: n // 2] = 1
    rng.shuffle(y)
    cheap = rng.normal(size=(n, 3))
    cheap[:, 0] += MU_CHEAP * y
    sae = rng.normal(size=(n, N_NOISE + 1))
    sae[:, 0] += mu_sae * y
    raw = rng.normal(size=(n, N_NOISE + 1))
    return {"cheap": cheap, "raw": raw, "sae": sae}, y


def planted_gain(mu_sae: float = MU_SAE) -> float:
    """True AUROC(cheap + SAE) − AUROC(cheap)."""
    return sps.norm.cdf(np.hypot(MU_CHEAP, mu_sae) / np.sqrt(2)) - sps.norm.cdf(MU_CHEAP / np.sqrt(2))


def auroc_of(result, rung: str) -> float:
    return float(result.table.set_index("rung").loc[rung, "auroc"])


@pytest.fixture(scope="module")
def train_test_result():
    blocks, y = planted_blocks(2000, seed=0)
    train_mask = np.arange(y.size) % 2 == 0
    return run_ladder(blocks, y, train_mask=train_mask, seed=0, n_boot=300, n_perm=500)


def test_planted_sae_signal_raises_auroc_by_planted_amount(train_test_result):
    result = train_test_result
    gain = planted_gain()
    assert gain > 0.09  # the planted effect is large enough to matter
    assert result.deltas["P3-P1"]["delta"] == pytest.approx(gain, abs=0.04)
    assert result.deltas["P3-P2"]["delta"] == pytest.approx(gain, abs=0.04)
    assert auroc_of(result, "P1") == pytest.approx(sps.norm.cdf(MU_CHEAP / np.sqrt(2)), abs=0.04)
    headline = result.deltas["P3-P2"]
    assert headline["ci_low"] > 0
    assert headline["p_paired_permutation"] < 0.01 and headline["p_delong"] < 0.01


def test_ladder_ranks_rungs_where_they_should(train_test_result):
    result = train_test_result
    area = {rung: auroc_of(result, rung) for rung in RUNGS}
    assert area["P3"] == max(area.values())
    assert area["P5"] > area["P4"] + 0.1
    assert abs(area["P4"] - 0.5) < 0.06  # raw activations carry nothing here
    assert abs(area["P2"] - area["P1"]) < 0.03
    assert result.deltas["P5-P4"]["delta"] > 0.1


def test_without_planted_signal_the_gain_vanishes():
    blocks, y = planted_blocks(2000, seed=1, mu_sae=0.0)
    result = run_ladder(
        blocks, y, train_mask=np.arange(y.size) % 2 == 0, seed=0, n_boot=200, n_perm=300, rungs=("P1", "P3")
    )
    assert abs(result.deltas["P3-P1"]["delta"]) < 0.03
    assert set(result.deltas) == {"P3-P1"}


def test_coefficients_point_at_the_planted_feature(train_test_result):
    result = train_test_result
    p5 = result.coefficients["P5"]
    assert p5.shape == (N_NOISE + 1,)
    assert int(np.argmax(np.abs(p5))) == 0
    p3 = result.coefficients["P3"]
    start, stop = result.feature_slices["P3"]["sae"]
    assert (start, stop) == (3, 3 + N_NOISE + 1)
    assert int(np.argmax(np.abs(p3[start:stop]))) == 0


def test_result_shapes_and_outputs(train_test_result, tmp_path):
    result = train_test_result
    assert np.array_equal(result.eval_index, np.flatnonzero(np.arange(2000) % 2 == 1))
    assert all(score.shape == result.eval_index.shape for score in result.scores.values())
    assert all(((score > 0) & (score < 1)).all() for score in result.scores.values())
    assert list(result.table.columns) == ["rung", "blocks", "n_features", "auroc", "auroc_ci_low", "auroc_ci_high", "C"]
    assert list(result.table["n_features"]) == [3, 12, 12, 9, 9]
    frame = result.to_frame()
    assert list(frame["name"]) == ["P1", "P2", "P3", "P4", "P5", "P3-P2", "P3-P1", "P5-P4"]
    write_experiment(tmp_path, "ladder", result.to_dict(), frame)
    assert read_json(tmp_path / "ladder.json")["deltas"]["P3-P2"]["delta"] == pytest.approx(
        result.deltas["P3-P2"]["delta"]
    )
    assert len(pd.read_parquet(tmp_path / "ladder.parquet")) == 8
    assert list(result.scores_frame().columns) == ["index", "y", "P1", "P2", "P3", "P4", "P5"]


def test_out_of_fold_with_blocked_folds_scores_every_example():
    blocks, y = planted_blocks(600, seed=2)
    folds = np.repeat(np.arange(3), 200)  # contiguous blocks, as for time series
    result = run_ladder(blocks, y, folds=folds, seed=0, Cs=(0.1, 1.0), n_boot=200, n_perm=300, rungs=("P1", "P3"))
    assert np.array_equal(result.eval_index, np.arange(600))
    assert len(result.C_by_fold["P3"]) == 3
    assert result.settings["design"] == "out_of_fold"
    assert result.deltas["P3-P1"]["delta"] == pytest.approx(planted_gain(), abs=0.06)


def test_out_of_fold_accepts_a_sklearn_splitter():
    blocks, y = planted_blocks(300, seed=3)
    splitter = StratifiedKFold(n_splits=3, shuffle=True, random_state=0)
    result = run_ladder(blocks, y, folds=splitter, seed=0, Cs=(0.1, 1.0), n_boot=100, n_perm=100, rungs=("P5",))
    assert result.eval_index.size == 300
    assert auroc_of(result, "P5") > 0.65


def test_constant_column_is_dropped_with_zero_coefficient():
    blocks, y = planted_blocks(400, seed=4)
    blocks["sae"] = np.hstack([blocks["sae"], np.full((400, 1), 3.0)])
    result = run_ladder(blocks, y, train_mask=np.arange(400) < 300, seed=0, n_boot=50, n_perm=50, rungs=("P5",))
    assert result.coefficients["P5"][-1] == 0.0
    assert result.coefficients["P5"][0] != 0.0


def test_same_seed_gives_bit_identical_json():
    blocks, y = planted_blocks(300, seed=5)
    kwargs = dict(train_mask=np.arange(300) < 200, seed=7, Cs=(0.1, 1.0), n_boot=100, n_perm=200, rungs=("P1", "P3"))
    assert dumps(run_ladder(blocks, y, **kwargs).to_dict()) == dumps(run_ladder(blocks, y, **kwargs).to_dict())


def _one_line_error(fragment: str, *args, **kwargs) -> None:
    with pytest.raises(InputError, match=fragment) as info:
        run_ladder(*args, **kwargs)
    assert "\n" not in str(info.value)


def test_guardrails():
    blocks, y = planted_blocks(100, seed=6)
    mask = np.arange(100) < 70
    _one_line_error("both classes", blocks, np.zeros(100, dtype=int), train_mask=mask)
    only_negatives_train = y == 0
    _one_line_error("all of class 0", blocks, y, train_mask=only_negatives_train)
    bad = dict(blocks, sae=blocks["sae"].copy())
    bad["sae"][17, 2] = np.nan
    _one_line_error(r"blocks\['sae'\].*row 17", bad, y, train_mask=mask)
    bad["sae"][17, 2] = np.inf
    _one_line_error(r"blocks\['sae'\].*row 17", bad, y, train_mask=mask)
    _one_line_error("rows but y has", dict(blocks, raw=blocks["raw"][:-1]), y, train_mask=mask)
    _one_line_error("empty", dict(blocks, cheap=np.zeros((100, 0))), y, train_mask=mask)
    _one_line_error("needs block 'raw'", {"cheap": blocks["cheap"], "sae": blocks["sae"]}, y, train_mask=mask)
    _one_line_error("exactly one", blocks, y)
    _one_line_error("exactly one", blocks, y, train_mask=mask, folds=np.arange(100) % 2)
    _one_line_error("100 rows but y has 99", blocks, y[:-1], train_mask=mask[:-1])
    _one_line_error("rungs", blocks, y, train_mask=mask, rungs=("P9",))


def test_an_l1_probe_keeps_the_planted_sae_column_and_zeroes_most_noise_columns() -> None:
    """penalty l1 (the original study's probe): sparse coefficients; the default l2 zeroes none."""
    blocks, y = planted_blocks(600, seed=3)
    train_mask = np.arange(y.size) % 2 == 0
    options = {"train_mask": train_mask, "Cs": (0.02,), "n_boot": 100, "n_perm": 100, "rungs": ("P5",)}
    sparse = run_ladder(blocks, y, penalty="l1", **options)
    dense = run_ladder(blocks, y, **options)
    l1, l2 = np.asarray(sparse.coefficients["P5"]), np.asarray(dense.coefficients["P5"])
    assert l1[0] != 0 and np.sum(l1[1:] == 0) >= N_NOISE // 2
    assert np.all(l2 != 0)
    assert sparse.settings["penalty"] == "l1" and auroc_of(sparse, "P5") > 0.65
    with pytest.raises(InputError, match="penalty"):
        run_ladder(blocks, y, penalty="elasticnet", **options)
