"""TSFM model side on a tiny Chronos-T5 built in the test: HF round trip, training,
per-window sampling, extraction contract, SAE splicing and causal patching with CRN."""

from __future__ import annotations

import os
import re

import numpy as np
import pandas as pd
import pytest
import torch
import zarr
from conftest import identity_sae

from sae_difficulty.modalities import get_modality
from sae_difficulty.modalities.base import Modality
from sae_difficulty.modalities.tsfm.backbone import (
    backbone_spec,
    build_chronos_t5,
    is_hub_backbone,
)
from sae_difficulty.modalities.tsfm.patching import sample_forecasts, window_seed
from sae_difficulty.utils.errors import InputError

os.environ["HF_HUB_OFFLINE"] = "1"
torch.set_num_threads(1)

CONTEXT, HORIZON = 32, 8
TINY = {
    "d_model": 16,
    "n_layers": 2,
    "n_heads": 2,
    "d_ff": 32,
    "context_length": CONTEXT,
    "prediction_length": HORIZON,
    "n_tokens": 128,
    "num_samples": 8,
    "train_steps": 40,
    "batch_size": 16,
    "lr": 1e-2,
    "heldout_windows": 32,
    "synthetic_series": 6,
    "synthetic_length": 96,
    "heldout_fraction": 0.25,
}
TASKS = {"context_length": CONTEXT, "horizon": HORIZON, "stride": 8, "pretrain_fraction": 0.5, "train_fraction": 0.65, "cv_folds": 3}


def write_csv(path, n=400, seed=0):
    rng = np.random.default_rng(seed)
    t = np.arange(n)
    values = 20 + 4 * np.sin(2 * np.pi * t / 24) + np.cumsum(rng.normal(0, 0.4, n))
    dates = pd.date_range("2021-01-01", periods=n, freq="h").strftime("%Y-%m-%d %H:%M:%S")
    pd.DataFrame({"date": dates, "OT": values}).to_csv(path, index=False)
    return path


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("tsfm")
    csv = write_csv(root / "series.csv", n=480)
    modality = get_modality("tsfm")
    params = {**TINY, "etth1": {"path": str(csv), "pretrain_fraction": TASKS["pretrain_fraction"]}}
    summary = modality.train_backbone(params, root / "model", seed=0)
    model = modality.load_backbone(root / "model", device="cpu")
    modality.build_tasks("etth1", {"path": str(csv), **TASKS}, root / "tasks", seed=0)
    return {"root": root, "modality": modality, "params": params, "summary": summary, "model": model}


def test_adapter_satisfies_the_protocol(setup):
    assert isinstance(setup["modality"], Modality) and setup["modality"].name == "tsfm"
    assert is_hub_backbone({"hub": "amazon/chronos-t5-small"}) and not is_hub_backbone({"hub": None})
    with pytest.raises(InputError, match="is loaded, not trained"):
        setup["modality"].train_backbone({"hub": "amazon/chronos-t5-small"}, setup["root"] / "x", seed=0)


def test_training_lowers_heldout_loss_and_is_deterministic(setup, tmp_path):
    summary = setup["summary"]
    assert summary["heldout_loss"] < summary["heldout_loss_initial"] - 0.3
    again = setup["modality"].train_backbone({**setup["params"], "train_steps": 3}, tmp_path / "a", seed=5)
    twice = setup["modality"].train_backbone({**setup["params"], "train_steps": 3}, tmp_path / "b", seed=5)
    assert again == twice
    assert (tmp_path / "a" / "model.safetensors").read_bytes() == (tmp_path / "b" / "model.safetensors").read_bytes()


def test_hf_save_and_chronos_pipeline_load_round_trip(tmp_path):
    from chronos import ChronosPipeline

    built = build_chronos_t5(backbone_spec(TINY), seed=1)
    built.model.model.eval().save_pretrained(tmp_path / "m")
    loaded = ChronosPipeline.from_pretrained(str(tmp_path / "m"))
    series = torch.tensor(pd.read_csv(write_csv(tmp_path / "s.csv"))["OT"].to_numpy()[: 3 * CONTEXT], dtype=torch.float32)
    batch = series.reshape(3, CONTEXT)
    forecasts = []
    for pipeline in (built, loaded):
        torch.manual_seed(123)
        forecasts.append(pipeline.predict(batch, num_samples=6))
    assert torch.equal(forecasts[0], forecasts[1])
    torch.manual_seed(124)
    assert not torch.equal(loaded.predict(batch, num_samples=6), forecasts[1])  # the seed matters
    seeds = [window_seed(0, i) for i in range(3)]
    ours = [sample_forecasts(p, batch.numpy(), seeds, 6, HORIZON) for p in (built, loaded)]
    np.testing.assert_array_equal(ours[0], ours[1])


def test_sampling_is_per_window_and_matches_chronos_predict_in_distribution(setup):
    model = setup["model"]
    from sae_difficulty.modalities.tsfm.tasks import read_windows

    _, contexts, _ = read_windows(setup["root"] / "tasks")
    seeds = [window_seed(7, i) for i in range(6)]
    together = sample_forecasts(model, contexts[:6], seeds, 5, HORIZON)
    alone = sample_forecasts(model, contexts[4:5], seeds[4:5], 5, HORIZON)
    np.testing.assert_array_equal(together[4:5], alone)  # a window's draw ignores its batch neighbours
    ours = sample_forecasts(model, contexts[:1], [11], 3000, 1)[0, :, 0]
    torch.manual_seed(11)
    theirs = model.predict(torch.tensor(contexts[:1], dtype=torch.float32), num_samples=3000, prediction_length=1)[0, :, 0]
    from scipy.stats import ks_2samp

    assert ks_2samp(ours, theirs.numpy()).pvalue > 0.001
    with pytest.raises(InputError, match="exceeds the backbone's prediction_length"):
        sample_forecasts(model, contexts[:1], [0], 2, HORIZON + 1)


def test_evaluate_table_is_batch_invariant(setup):
    modality, model, tasks = setup["modality"], setup["model"], setup["root"] / "tasks"
    table = modality.evaluate(model, tasks, {"num_samples": 6, "batch_size": 64}, seed=0)
    examples = pd.read_parquet(tasks / "examples.parquet")
    assert list(table["id"]) == list(examples["id"]) and "split" not in table
    cheap = table.filter(like="cheap__")
    assert cheap.shape[1] >= 10 and np.isfinite(cheap.to_numpy()).all()
    assert (table["error"] > 0).all() and table["mase"].notna().all()
    rebatched = modality.evaluate(model, tasks, {"num_samples": 6, "batch_size": 7}, seed=0)
    np.testing.assert_array_equal(table["error"], rebatched["error"])
    reseeded = modality.evaluate(model, tasks, {"num_samples": 6, "batch_size": 64}, seed=1)
    assert not np.array_equal(table["error"], reseeded["error"])


def test_scaled_crps_error_divides_each_window_by_its_own_context_level(setup):
    """error: crps_scaled labels on CRPS over the context's mean |value| (a level-free error); raw CRPS stays beside it."""
    modality, model, tasks = setup["modality"], setup["model"], setup["root"] / "tasks"
    from sae_difficulty.modalities.tsfm.tasks import read_windows

    _, contexts, _ = read_windows(tasks)
    raw = modality.evaluate(model, tasks, {"num_samples": 6}, seed=0)
    scaled = modality.evaluate(model, tasks, {"num_samples": 6, "error": "crps_scaled"}, seed=0)
    np.testing.assert_array_equal(scaled["crps"], raw["error"])
    np.testing.assert_allclose(scaled["error"], raw["error"] / np.abs(contexts).mean(axis=1))
    assert not np.allclose(scaled["error"], raw["error"])
    with pytest.raises(InputError, match=r"tsfm.evaluate.error: expected one of \['crps', 'crps_scaled'\], got 'mase'"):
        modality.evaluate(model, tasks, {"num_samples": 6, "error": "mase"}, seed=0)


def test_extract_contract_and_layer_guardrail(setup):
    modality, model, root = setup["modality"], setup["model"], setup["root"]
    summary = modality.extract(model, root / "tasks", 0, root / "acts.zarr", {"batch_size": 5})
    group = zarr.open_group(str(root / "acts.zarr"), mode="r")
    tokens, last, mean, offsets = (np.asarray(group[k][...]) for k in ("tokens", "last", "mean", "offsets"))
    n = summary["n_examples"]
    assert tokens.dtype == np.float32 and tokens.shape == (n * CONTEXT, 16) and offsets.dtype == np.int64
    np.testing.assert_array_equal(tokens[offsets[1:] - 1], last)
    np.testing.assert_allclose(mean[3], tokens[offsets[3] : offsets[4]].mean(axis=0), rtol=1e-5, atol=1e-6)
    # independent route: the HF encoder's hidden_states[1] is block 0's output (EOS is the last position)
    from sae_difficulty.modalities.tsfm.patching import tokenize
    from sae_difficulty.modalities.tsfm.tasks import read_windows

    _, contexts, _ = read_windows(root / "tasks")
    input_ids, attention_mask, _, _ = tokenize(model, contexts[:2])
    with torch.no_grad():
        hidden = model.model.model.encoder(input_ids=input_ids, attention_mask=attention_mask, output_hidden_states=True).hidden_states[1]
    np.testing.assert_allclose(tokens[: 2 * CONTEXT], hidden[:, :CONTEXT].reshape(-1, 16).numpy(), rtol=1e-5, atol=1e-6)
    for bad in (2, -1, "1"):
        # one line naming the model, the layer and the valid range, before any work
        expected = f"tsfm layer {bad!r} is out of range for {root / 'model'}: this Chronos encoder has 2 blocks (valid 0..1)"
        with pytest.raises(InputError, match=re.escape(expected)):
            modality.extract(model, root / "tasks", bad, root / "bad.zarr", {})
        assert not (root / "bad.zarr").exists()


def test_training_activations_come_from_the_pool(setup):
    modality, model, root = setup["modality"], setup["model"], setup["root"]
    params = {**setup["params"], "tokens": 5000, "heldout_tokens": 700, "batch_size": 16}
    summary = modality.training_activations(model, 1, root / "train.zarr", params, seed=0)
    group = zarr.open_group(str(root / "train.zarr"), mode="r")
    assert group["train"].shape == (5000, 16) and group["heldout"].shape == (700, 16)
    assert group["train"].dtype == np.float32 and group["train"].chunks == (4096, 16)
    assert summary["pool"]["etth1"]["cutoff"] == 240
    assert not np.allclose(group["train"][:700], group["heldout"][...])


def test_identity_patch_gives_zero_delta_under_crn(setup):
    modality, model, tasks = setup["modality"], setup["model"], setup["root"] / "tasks"
    sae = identity_sae(16)
    dead, live = 32, 3
    params = {"max_examples": 12, "num_samples": 6, "batch_size": 5}
    table = modality.causal_patch(model, sae, tasks, 1, [dead, live], params, seed=0)
    assert set(table.columns) >= {"id", "feature", "positions", "delta", "crps_recon", "crps_clean"}
    assert len(table) == 12 * 2 * 2 and set(table["positions"]) == {"last", "all"}
    assert (table["crps_recon"] == table["crps_clean"]).all()  # an exact reconstruction changes nothing
    assert (table.loc[table["feature"] == dead, "delta"] == 0).all()  # ablating a dead feature: exactly 0
    assert (table.loc[(table["feature"] == live) & (table["positions"] == "all"), "delta"] != 0).any()
    noisy = modality.causal_patch(model, sae, tasks, 1, [dead], {**params, "crn": False}, seed=0)
    assert (noisy["delta"] != 0).mean() > 0.5  # independent draws: the same no-op shows sampling noise


def test_crn_reduces_the_variance_of_delta(setup):
    modality, model, tasks = setup["modality"], setup["model"], setup["root"] / "tasks"
    sae = identity_sae(16)
    params = {"max_examples": 40, "num_samples": 8, "batch_size": 20, "positions": ["last"]}
    features = [0, 5]
    crn = modality.causal_patch(model, sae, tasks, 1, features, params, seed=0)
    independent = modality.causal_patch(model, sae, tasks, 1, features, {**params, "crn": False}, seed=0)
    ratio = crn["delta"].var() / independent["delta"].var()
    assert ratio < 0.3, ratio


def test_spliced_loss_with_an_exact_reconstruction(setup):
    modality, model = setup["modality"], setup["model"]
    params = {**setup["params"], "n_windows": 8, "num_samples": 6, "batch_size": 8}
    result = modality.spliced_loss(model, identity_sae(16), 0, params, seed=0)
    assert result["crps_spliced"] == result["crps_clean"] and result["ce_spliced"] == result["ce_clean"]
    assert result["delta_crps"] == 0 and result["explained_variance"] == 1.0
    assert result["ce_zero_ablation"] > result["ce_clean"]  # zeroing the layer hurts the trained model
    assert result["fraction_recovered"] == 1.0 or np.isnan(result["fraction_recovered"])


def test_sae_guardrails(setup):
    from sae_lens import StandardSAE, StandardSAEConfig

    modality, model, tasks = setup["modality"], setup["model"], setup["root"] / "tasks"
    torch.manual_seed(0)
    untrained = StandardSAE(StandardSAEConfig(d_in=16, d_sae=64))
    params = {"max_examples": 4, "num_samples": 4}
    with pytest.raises(InputError, match="explained variance .* below min_explained_variance=0.5"):
        modality.causal_patch(model, untrained, tasks, 1, [0], params, seed=0)
    with pytest.raises(InputError, match="SAE is missing"):
        modality.causal_patch(model, None, tasks, 1, [0], params, seed=0)
    with pytest.raises(InputError, match="d_in=8 does not match the encoder width d_model=16"):
        modality.causal_patch(model, identity_sae(8), tasks, 1, [0], params, seed=0)
    with pytest.raises(InputError, match=r"features \[99\]"):
        modality.causal_patch(model, identity_sae(16), tasks, 1, [99], params, seed=0)
    with pytest.raises(InputError, match="out of range"):
        modality.spliced_loss(model, identity_sae(16), 5, setup["params"], seed=0)


def test_windows_where_the_ablated_feature_is_silent_are_not_forecast_again(setup, monkeypatch):
    from sae_difficulty.modalities.tsfm import patching, sae_in_loop
    from sae_difficulty.modalities.tsfm.activations import context_states
    from sae_difficulty.modalities.tsfm.tasks import read_windows

    model, tasks = setup["model"], setup["root"] / "tasks"
    sae = identity_sae(16)
    _, contexts, _ = read_windows(tasks)
    with torch.no_grad():  # feature 3 fires at the last context position of about one window in five
        sae.b_enc[3] = -float(np.quantile(context_states(model, contexts, 1)[:, -1, 3], 0.8))
    windows_forecast: list[int] = []
    sample = patching.sample_forecasts

    def counting(pipeline, batch, *args, **kwargs):
        windows_forecast.append(len(batch))
        return sample(pipeline, batch, *args, **kwargs)

    monkeypatch.setattr(patching, "sample_forecasts", counting)
    # the threshold costs reconstruction fidelity, which is not what this test is about
    params = {"max_examples": 12, "num_samples": 6, "batch_size": 6, "min_explained_variance": -1e9}
    features = [3, 32]  # 32 never fires
    runs = {}
    for skip in (True, False):
        windows_forecast.clear()
        table = sae_in_loop.causal_patch(model, sae, tasks, 1, features, params, seed=0, skip_silent=skip)
        runs[skip] = (table, sum(windows_forecast), list(windows_forecast))
    (fast, n_fast, fast_batches), (full, n_full, _) = runs[True], runs[False]
    # the dead feature is never forecast (2 positions x 12 windows), feature 3 at "last" only where it fires
    assert n_fast < n_full - 2 * 12, (n_fast, n_full)
    pd.testing.assert_frame_equal(fast, full)  # the same table, bit for bit
    assert any(0 < n < params["batch_size"] for n in fast_batches)  # feature 3's few firing windows, as a sub-batch
    windows_forecast.clear()
    sae_in_loop.causal_patch(model, sae, tasks, 1, features, {**params, "crn": False}, seed=0)
    assert sum(windows_forecast) == n_full  # independent draws: every condition is sampled
