"""The ground-truth evaluation on planted SAEs: one whose decoder is the true dictionary (MCC 1)
and an untrained one with random directions (MCC on the random-dictionary value)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sae_lens.synthetic import init_sae_to_match_feature_dict

from sae_difficulty.evals.ground_truth import (
    PUBLISHED_CLAIM,
    PUBLISHED_MCC_LOW,
    GroundTruthConfig,
    evaluate_ground_truth,
    headline,
)
from sae_difficulty.saes import synthetic
from sae_difficulty.saes.training import SAETrainingSpec, make_training_sae
from sae_difficulty.utils.errors import InputError

HIDDEN, FEATURES = 16, 64
MODEL = {
    "num_features": FEATURES, "hidden_dim": HIDDEN, "firing": {"exponent": 0.5, "max_prob": 0.3, "min_prob": 0.02},
    "hierarchy": None, "correlation": None, "orthogonalization": None,
    "magnitudes": {"mean_start": 5.0, "mean_end": 4.0, "std_mean": 0.5, "std_std": 0.5}, "bias": 0.0, "seed": 0,
}  # fmt: skip
CONFIG = GroundTruthConfig(n_samples=4096, batch_size=1024, n_random=20, n_boot=200)


@pytest.fixture(scope="module")
def model():
    return synthetic.build_model(MODEL)


def _sae(seed: int):
    torch.manual_seed(seed)
    return make_training_sae(SAETrainingSpec(architecture="relu", expansion=FEATURES // HIDDEN), HIDDEN)


def test_an_sae_initialised_to_the_true_dictionary_scores_mcc_one(model):
    sae = _sae(0)
    init_sae_to_match_feature_dict(sae, model.feature_dict)
    result = evaluate_ground_truth(sae, model, CONFIG, training_tokens=0)
    document = result.to_dict()
    assert document["mcc"] == pytest.approx(1.0, abs=1e-5)
    assert document["mcc_ci_low"] == pytest.approx(1.0, abs=1e-5)
    assert document["true_recovered_fraction"] == 1.0 and document["latent_match_fraction"] == 1.0
    assert document["random_mcc"] < 0.9
    # each latent's nearest true feature is its own (the planted order)
    assert (result.latents["best_true_feature"].to_numpy() == np.arange(FEATURES)).all()


def test_a_random_sae_scores_the_random_dictionary_mcc(model):
    document = evaluate_ground_truth(_sae(1), model, CONFIG).to_dict()
    assert document["mcc"] < 0.9
    # an untrained SAE's decoder is a random dictionary: its MCC sits within the random draws' spread
    assert abs(document["mcc"] - document["random_mcc"]) < 4 * document["random_mcc_sd"] + 0.02
    assert document["true_recovered_fraction"] < 0.2


def test_the_headline_uses_the_published_claim_only_where_the_settings_match(model):
    sae = _sae(2)
    unmatched = headline(evaluate_ground_truth(sae, model, CONFIG))
    assert unmatched["claim"] == "" and unmatched["null"] < 0.9
    published = {"settings_match": True, "claim": PUBLISHED_CLAIM, "reason": "planted"}
    matched = headline(evaluate_ground_truth(sae, model, CONFIG, published=published))
    assert matched["claim"] == PUBLISHED_CLAIM and matched["null"] == PUBLISHED_MCC_LOW


def test_an_sae_of_another_width_is_a_one_line_error(model):
    sae = make_training_sae(SAETrainingSpec(architecture="relu", expansion=2), HIDDEN + 1)
    with pytest.raises(InputError, match="hidden_dim"):
        evaluate_ground_truth(sae, model, CONFIG)
