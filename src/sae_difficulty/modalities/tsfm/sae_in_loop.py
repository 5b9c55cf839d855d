"""The SAE inside Chronos: spliced-loss quality on the training pool, and feature ablations on test windows.

``spliced_loss`` - ``n_windows`` 64, ``num_samples`` 20, ``batch_size`` 32,
``context_length`` (the model's), ``crps_estimator``, ``min_explained_variance`` (default
None: reported, not enforced), plus the training-pool keys (see ``adapter``'s docstring;
they must equal the backbone's).
``causal_patch`` - ``max_examples`` 100, ``num_samples`` 20, ``batch_size`` 16, ``crn``
true, ``split`` "test" ("train"/"all"), ``positions`` ["last", "all"], ``crps_estimator``,
``min_explained_variance`` 0.5.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from sae_difficulty.modalities.tsfm import data, patching
from sae_difficulty.modalities.tsfm.activations import context_states
from sae_difficulty.modalities.tsfm.backbone import window_loss
from sae_difficulty.modalities.tsfm.runtime import (
    batch_progress,
    check_context,
    d_model,
)
from sae_difficulty.modalities.tsfm.tasks import read_windows
from sae_difficulty.utils.errors import InputError

POSITIONS = ("last", "all")


def spliced_loss(model: Any, sae: Any, layer: int, params: dict[str, Any], seed: int) -> dict[str, float]:
    """CRPS (in mean-scaled units, so synthetic and ETTh1 windows weigh alike) and teacher-forced
    cross-entropy on held-out training-pool windows: clean, with the SAE reconstruction spliced
    at every context position of block ``layer``, and with those positions zero-ablated; the
    same per-window sampling seeds in all three (common random numbers)."""
    from sae_difficulty.core.sae_metrics import loss_recovered

    layer = patching.check_layer(model, layer)
    patching.check_sae(sae, d_model(model))
    config = model.model.config
    context_length = int(params.get("context_length") or config.context_length)
    check_context(model, context_length)
    horizon = int(config.prediction_length)
    span = context_length + horizon
    pool = data.training_pool(params, min_length=span)
    windows = data.sample_windows(
        pool.heldout,
        pool.heldout_source,
        int(params.get("n_windows", 64)),
        span,
        context_length,
        np.random.default_rng([seed, 20]),
        float(params.get("etth1_probability", 0.5)),
    )
    contexts, targets = windows[:, :context_length], windows[:, context_length:]
    scales = np.abs(contexts).mean(axis=1, keepdims=True)
    scales = np.where(scales > 0, scales, 1.0)
    conditions = {"clean": None, "spliced": patching.reconstruction_edit(sae, "all"), "zero_ablation": patching.zero_edit}
    num_samples = int(params.get("num_samples", 20))
    estimator = str(params.get("crps_estimator", "qd"))
    batch_size = int(params.get("batch_size", 32))
    floor = params.get("min_explained_variance")
    states = context_states(model, contexts[:batch_size], layer).reshape(-1, d_model(model))
    ev = patching.check_sae_fidelity(sae, states, -np.inf if floor is None else float(floor))
    crps = {name: np.empty(len(windows)) for name in conditions}
    cross_entropy = {name: 0.0 for name in conditions}
    for start in batch_progress(len(windows), batch_size, "spliced CRPS"):
        stop = min(start + batch_size, len(windows))
        seeds = [patching.window_seed(seed, i) for i in range(start, stop)]
        for name, edit in conditions.items():
            samples = patching.sample_forecasts(
                model, contexts[start:stop], seeds, num_samples, horizon, layer=layer if edit else None, edit=edit
            )
            crps[name][start:stop] = patching.crps_per_window(
                samples / scales[start:stop, :, None], targets[start:stop] / scales[start:stop], estimator
            )
            cross_entropy[name] += teacher_forced_loss(model, windows[start:stop], layer, edit) * (stop - start)
    means = {name: float(values.mean()) for name, values in crps.items()}
    recovered = loss_recovered(means["clean"], means["spliced"], means["zero_ablation"])
    ce = {name: total / len(windows) for name, total in cross_entropy.items()}
    return {
        "crps_clean": means["clean"],
        "crps_spliced": means["spliced"],
        "crps_zero_ablation": means["zero_ablation"],
        "delta_crps": recovered["delta"],
        "fraction_recovered": recovered["fraction_recovered"],
        "ce_clean": ce["clean"],
        "ce_spliced": ce["spliced"],
        "ce_zero_ablation": ce["zero_ablation"],
        "ce_fraction_recovered": loss_recovered(ce["clean"], ce["spliced"], ce["zero_ablation"])["fraction_recovered"],
        "explained_variance": ev,
        "n_windows": int(len(windows)),
        "num_samples": num_samples,
    }


def teacher_forced_loss(model: Any, windows: np.ndarray, layer: int, edit: patching.Edit | None) -> float:
    """The Chronos training loss of the windows, with ``edit`` applied to block ``layer``."""
    with torch.no_grad():
        if edit is None:
            return float(window_loss(model, windows))
        context_mask = patching.tokenize(model, windows[:, : -model.model.config.prediction_length])[3].to(model.model.device)
        with patching.block_output_hook(model, layer, lambda hidden: edit(hidden, context_mask)):
            return float(window_loss(model, windows))


def causal_patch(
    model: Any,
    sae: Any,
    tasks_dir: Path,
    layer: int,
    features: list[int],
    params: dict[str, Any],
    seed: int,
    skip_silent: bool = True,
) -> pd.DataFrame:
    """Per window, feature f and positions in {"last", "all"}: ``delta`` = CRPS with the
    f-ablated reconstruction - CRPS with the reconstruction, both spliced at those positions
    of block ``layer``. With ``crn`` (default) every forecast of a window uses the same seed,
    so delta isolates the ablation (and is exactly 0 for a feature that is never active);
    ``crn: false`` draws each condition independently. Columns: id, feature, positions,
    delta, crps_ablated, crps_recon, crps_clean. Refuses an SAE whose explained variance on
    these windows is below ``min_explained_variance`` (default 0.5).

    ``skip_silent`` (under CRN): a window where f does not fire at the edited positions gets
    the reconstruction's forecast as its ablated one without sampling it again: the edit
    leaves its encoder states bit for bit unchanged, so the forecast would be identical and
    delta exactly 0. Whether f fires is read from the codes the edit itself computes (same
    block output, same batch). When f fires in fewer than half the batch's windows, those
    windows are forecast as a sub-batch, ablated and reconstructed alike. With a TopK SAE a
    feature fires at the last context position of a few windows in a hundred, so the "last"
    ablations cost a few windows instead of the batch (the demo's TSFM causal node: 234 s
    before)."""
    layer = patching.check_layer(model, layer)
    patching.check_sae(sae, d_model(model))
    d_sae = int(getattr(sae.cfg, "d_sae", 0) or 0)
    features = [int(f) for f in features]
    if not features or any(not 0 <= f < d_sae for f in features):
        raise InputError(f"features {features}: expected a non-empty list of SAE feature indices in [0, {d_sae})")
    positions = [str(p) for p in params.get("positions", POSITIONS)]
    if not positions or any(p not in POSITIONS for p in positions):
        raise InputError(f"positions {positions}: expected a non-empty subset of {list(POSITIONS)}")
    examples, contexts, targets = read_windows(tasks_dir)
    check_context(model, contexts.shape[1])
    split = str(params.get("split", "test"))
    if split not in ("train", "test", "all"):
        raise InputError(f"split {split!r}: expected 'train', 'test' or 'all'")
    candidates = np.arange(len(examples)) if split == "all" else np.flatnonzero(examples["split"].to_numpy() == split)
    if len(candidates) == 0:
        raise InputError(f"{tasks_dir}: no {split} windows to patch")
    max_examples = int(params.get("max_examples", 100))
    if len(candidates) > max_examples:  # evenly spread over time, deterministic
        candidates = candidates[np.unique(np.linspace(0, len(candidates) - 1, max_examples).round().astype(int))]
    crn = bool(params.get("crn", True))
    num_samples = int(params.get("num_samples", 20))
    estimator = str(params.get("crps_estimator", "qd"))
    batch_size = int(params.get("batch_size", 16))
    horizon = targets.shape[1]
    # Condition streams: 0 for all under CRN; distinct ones for the independent-draw estimator.
    streams = {("clean", None, None): 1}
    for p in positions:
        streams[("recon", p, None)] = len(streams) + 1
        for f in features:
            streams[("ablate", p, f)] = len(streams) + 1

    def run(indices: np.ndarray, key: tuple, edit: patching.Edit | None) -> np.ndarray:
        seeds = [patching.window_seed(seed, int(i), 0 if crn else streams[key]) for i in indices]
        samples = patching.sample_forecasts(
            model, contexts[indices], seeds, num_samples, horizon, layer=layer if edit else None, edit=edit
        )
        return patching.crps_per_window(samples, targets[indices], estimator)

    def ablate(indices: np.ndarray, p: str, f: int, recon: np.ndarray, fired: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """CRPS ablated and reconstructed for one feature on a batch (see ``skip_silent``)."""
        edit = patching.reconstruction_edit(sae, p, ablate=[f])
        if not (skip_silent and crn) or 2 * fired.sum() >= len(indices):
            return run(indices, ("ablate", p, f), edit), recon
        ablated, recon = recon.copy(), recon.copy()  # silent windows: the ablated forecast is the reconstruction's
        if fired.any():  # both conditions on the same sub-batch, so delta never mixes batch shapes
            ablated[fired] = run(indices[fired], ("ablate", p, f), edit)
            recon[fired] = run(indices[fired], ("recon", p, None), patching.reconstruction_edit(sae, p))
        return ablated, recon

    first = candidates[:batch_size]
    states = context_states(model, contexts[first], layer).reshape(-1, d_model(model))
    ev = patching.check_sae_fidelity(sae, states, float(params.get("min_explained_variance", 0.5)))
    frames = []
    for start in batch_progress(len(candidates), batch_size, "causal patching"):
        indices = candidates[start : start + batch_size]
        clean = run(indices, ("clean", None, None), None)
        _, _, _, context_mask, hidden = patching.run_encoder(model, contexts[indices], layer=layer, capture=True)
        for p in positions:
            full_recon = run(indices, ("recon", p, None), patching.reconstruction_edit(sae, p))
            fired = patching.active_features(sae, hidden, context_mask.to(hidden.device), p)
            for f in features:
                ablated, recon = ablate(indices, p, f, full_recon, fired[:, f])
                frames.append(
                    pd.DataFrame(
                        {
                            "id": examples["id"].to_numpy()[indices],
                            "feature": f,
                            "positions": p,
                            "delta": ablated - recon,
                            "crps_ablated": ablated,
                            "crps_recon": recon,
                            "crps_clean": clean,
                        }
                    )
                )
    table = pd.concat(frames, ignore_index=True)
    order = {window_id: k for k, window_id in enumerate(examples["id"])}
    table = table.sort_values(
        ["positions", "feature", "id"], key=lambda col: col.map(order) if col.name == "id" else col, kind="stable"
    ).reset_index(drop=True)
    table.attrs.update({"explained_variance": ev, "crn": crn, "layer": layer, "num_samples": num_samples})
    return table
