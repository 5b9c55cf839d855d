"""modalities.modular.model: grokking training is deterministic and specs reject bad values in one line
(the trained model itself is checked on the stage nodes in tests/stages/test_modular_backbone.py)."""

from __future__ import annotations

import pandas as pd
import pytest
import torch
from conftest import SMALL_BACKBONE

from sae_difficulty.modalities.modular import model as modular


def test_training_is_deterministic_and_a_short_budget_fails_clearly() -> None:
    short = {**SMALL_BACKBONE, "train_steps": 30, "eval_every": 10, "min_test_accuracy": 0.0}
    first = modular.train_grokking(modular.GrokkingSpec.from_dict(short), progress=False)
    second = modular.train_grokking(modular.GrokkingSpec.from_dict(short), progress=False)
    for name, tensor in first.model.state_dict().items():
        assert torch.equal(tensor, second.model.state_dict()[name]), name
    pd.testing.assert_frame_equal(first.curves, second.curves)
    with pytest.raises(modular.GrokkingError, match=r"below min_test_accuracy 1\.0.*modular\.train_steps"):
        modular.train_grokking(modular.GrokkingSpec.from_dict({**short, "min_test_accuracy": 1.0}), progress=False)


def test_spec_rejects_bad_values_in_one_line() -> None:
    with pytest.raises(modular.InputError, match="odd prime"):
        modular.GrokkingSpec(p=21)
    with pytest.raises(modular.InputError, match="divisor of d_model"):
        modular.GrokkingSpec(d_model=30, n_heads=4)
    with pytest.raises(modular.InputError, match="unknown key"):
        modular.GrokkingSpec.from_dict({"p": 23, "layers": 2})
