"""The time-series adapter: Chronos-T5 on ETTh1 forecast windows (``TimeSeriesModality``).

It satisfies :class:`sae_difficulty.modalities.base.Modality`. The pieces live in
siblings: ``tsfm_data`` (ETTh1, windows, splits, synthetic series, the training pool),
``tsfm_backbone`` (build/train/save/load a Chronos-T5; the training loop is written here
because the chronos-forecasting wheel ships no trainer), ``tsfm_features`` (cheap
statistics), ``tsfm_patching`` (encoder hooks, per-window-seeded sampling, CRPS, SAE edits).

Keys read from ``params`` (the config section the rule passes), with defaults:

``train_backbone`` - size: ``d_model`` 64, ``n_layers`` 2 (encoder and decoder each;
``n_decoder_layers`` overrides), ``n_heads`` 4, ``d_kv`` d_model/n_heads, ``d_ff`` 256,
``dropout`` 0.1; Chronos tokenizer: ``context_length`` 128, ``prediction_length`` 24,
``n_tokens`` 1024 (uniform bins + 2 special tokens + 1), ``low_limit``/``high_limit``
-15/15 (mean-scaled units), sampling defaults ``num_samples`` 20, ``temperature`` 1,
``top_k`` 50, ``top_p`` 1; optimisation: ``train_steps`` 300, ``batch_size`` 32, ``lr``
1e-3 (tiny models want 5e-3..1e-2), ``weight_decay`` 0.01, ``warmup_steps`` 0,
``grad_clip`` 1, ``heldout_windows`` 128, ``device`` auto; ``hub`` (a hub name: nothing is
trained, see :func:`is_hub_backbone`). Training pool (also read by
``training_activations`` and ``spliced_loss``, which must get the same values):
``synthetic_series`` 200, ``synthetic_length`` 1024, ``synthetic_seed`` 0,
``synthetic_max_kernels`` 5, ``heldout_fraction`` 0.1, ``etth1_probability`` 0.5 (share of
training windows drawn from ETTh1), ``etth1`` {``enabled`` true, ``path``
resources/ETTh1.csv, ``target`` OT, ``train_fraction`` 0.7 - the SAME cutoff as the tasks,
so the backbone never sees a test time step}.

``build_tasks`` - ``path`` (default resources/ETTh1.csv for etth1; required for etth2),
``target`` OT, ``time_column`` date, ``context_length`` 128, ``horizon`` 24, ``stride`` 24,
``train_fraction`` 0.7, ``cv_folds`` 5 (``sha256`` and ``enabled`` are the stage's).

``evaluate`` - ``num_samples`` 20, ``batch_size`` 32, ``season`` 24 (MASE and the
seasonal features), ``crps_estimator`` "qd" (scoringrules; "fair" for the unbiased one),
``temperature``/``top_k``/``top_p`` (default: the model's).

``extract`` - ``batch_size`` 32.  ``training_activations`` - ``tokens`` 200000,
``heldout_tokens`` 20000, ``batch_size`` 32, ``context_length`` (default the model's),
plus the pool keys.  ``spliced_loss`` - ``n_windows`` 64, ``num_samples`` 20,
``batch_size`` 32, ``context_length`` (the model's), ``crps_estimator``,
``min_explained_variance`` (default None: reported, not enforced), plus the pool keys.
``causal_patch`` - ``max_examples`` 100, ``num_samples`` 20, ``batch_size`` 16, ``crn``
true, ``split`` "test" ("train"/"all"), ``positions`` ["last", "all"], ``crps_estimator``,
``min_explained_variance`` 0.5.

Task files (``build_tasks``): ``records.jsonl``, one window per line in time order:
``id`` ("<dataset>-<start>"), ``start`` (row index of the first context step),
``forecast_start`` (row of the first forecast step), ``context_start_time``,
``forecast_start_time``, ``end_time`` (timestamps as written in the CSV), ``context``
(C floats) and ``target`` (H floats); ``examples.parquet``: ``id``, ``split``, ``fold``,
``start``, ``forecast_start``, ``cutoff`` (first test row), ``forecast_start_time``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from tqdm.auto import tqdm

from sae_difficulty.modalities.tsfm import data, patching
from sae_difficulty.modalities.tsfm.backbone import (
    is_hub_backbone,
    load_chronos,
    train_backbone,
    window_loss,
)
from sae_difficulty.modalities.tsfm.features import cheap_feature_table
from sae_difficulty.saes.cache import ChunkAlignedWriter
from sae_difficulty.utils.errors import InputError
from sae_difficulty.utils.io import write_parquet

__all__ = ["TimeSeriesModality", "is_hub_backbone", "read_windows"]

RECORDS = "records.jsonl"
EXAMPLES = "examples.parquet"
CHUNK_ROWS = 4096
POSITIONS = ("last", "all")


def read_windows(tasks_dir: str | Path) -> tuple[pd.DataFrame, np.ndarray, np.ndarray]:
    """The split table and the window values of a tasks dir: (examples, contexts [N, C], targets [N, H]),
    rows in the split table's order."""
    tasks_dir = Path(tasks_dir)
    for name in (RECORDS, EXAMPLES):
        if not (tasks_dir / name).is_file():
            raise InputError(f"{tasks_dir}: missing {name}; expected a tasks dir written by build_tasks")
    examples = pd.read_parquet(tasks_dir / EXAMPLES)
    records = {}
    with open(tasks_dir / RECORDS) as handle:
        for line_number, line in enumerate(handle, start=1):
            try:
                record = json.loads(line)
                records[record["id"]] = (record["context"], record["target"])
            except (json.JSONDecodeError, KeyError, TypeError):
                raise InputError(f"{tasks_dir / RECORDS}: line {line_number} is not a window record (id, context, target)") from None
    missing = [i for i in examples["id"] if i not in records]
    if missing:
        raise InputError(f"{tasks_dir}: split table id {missing[0]!r} has no record in {RECORDS}")
    try:
        contexts = np.array([records[i][0] for i in examples["id"]], dtype=np.float64)
        targets = np.array([records[i][1] for i in examples["id"]], dtype=np.float64)
    except ValueError:
        raise InputError(f"{tasks_dir / RECORDS}: windows differ in length; expected one context_length and horizon") from None
    if contexts.ndim != 2 or targets.ndim != 2 or not (np.isfinite(contexts).all() and np.isfinite(targets).all()):
        raise InputError(f"{tasks_dir / RECORDS}: expected finite numeric context/target lists")
    return examples, contexts, targets


def _check_context(pipeline, context_length: int) -> None:
    limit = pipeline.model.config.context_length
    if context_length > limit:
        raise InputError(f"window context_length {context_length} exceeds the backbone's context_length {limit}; use shorter windows")


def _d_model(pipeline) -> int:
    return int(pipeline.model.model.config.d_model)


def _batches(n: int, batch_size: int, desc: str):
    if int(batch_size) < 1:
        raise InputError(f"batch_size: expected >= 1, got {batch_size}")
    starts = range(0, n, int(batch_size))
    return tqdm(starts, desc=desc, unit="batch", total=len(starts), mininterval=5.0)


class TimeSeriesModality:
    """Chronos-T5 forecasting ETTh1 windows; see the module docstring for every parameter."""

    name = "tsfm"

    # ------------------------------------------------------------------ backbone

    def train_backbone(self, params: dict[str, Any], out_dir: Path, seed: int) -> dict[str, Any]:
        """Train the demo Chronos-T5 and save it in HF format (see ``tsfm_backbone.train_backbone``)."""
        return train_backbone(params, out_dir, seed)

    def load_backbone(self, source: str | Path, device: str | None = None) -> Any:
        """``ChronosPipeline.from_pretrained`` of a hub name or local dir (float32; cuda > mps > cpu)."""
        return load_chronos(source, device)

    # ------------------------------------------------------------------ tasks

    def build_tasks(self, dataset: str, params: dict[str, Any], out_dir: Path, seed: int) -> dict[str, Any]:
        """Rolling windows of the target, split by time, blocked folds; writes records.jsonl and
        examples.parquet. ``seed`` is unused: nothing here is random."""
        if dataset not in data.DATASET_FILES:
            raise InputError(f"dataset {dataset!r}: expected one of {sorted(data.DATASET_FILES)}")
        context_length = int(params.get("context_length", 128))
        horizon = int(params.get("horizon", 24))
        stride = int(params.get("stride", 24))
        cv_folds = int(params.get("cv_folds", 5))
        series = data.load_series(
            data.resolve_data_path(params.get("path"), dataset),
            params.get("target", data.DEFAULT_TARGET),
            params.get("time_column", data.DEFAULT_TIME_COLUMN),
        )
        starts = data.window_starts(len(series), context_length, horizon, stride)
        cutoff = data.time_cutoff(len(series), params.get("train_fraction", data.DEFAULT_TRAIN_FRACTION))
        split = data.split_windows(starts, context_length, horizon, cutoff)
        constant = data.constant_context(series.values, starts, context_length)
        keep = (split != "") & ~constant
        summary = {
            "source": series.source,
            "target": series.target,
            "n_rows": len(series),
            "cutoff": cutoff,
            "cutoff_time": str(series.timestamps[cutoff]),
            "context_length": context_length,
            "horizon": horizon,
            "stride": stride,
            "n_windows_total": int(len(starts)),
            "n_dropped_straddling_cutoff": int(np.sum(split == "")),
            "n_dropped_constant_context": int(np.sum((split != "") & constant)),
        }
        starts, split = starts[keep], split[keep]
        for name in ("train", "test"):
            if not np.any(split == name):
                raise InputError(
                    f"{series.source}: no {name} windows with train_fraction={params.get('train_fraction', data.DEFAULT_TRAIN_FRACTION)}, "
                    f"context_length={context_length}, horizon={horizon}; both splits need windows"
                )
        folds = data.blocked_folds(len(starts), cv_folds)
        ids = [f"{dataset}-{int(s):06d}" for s in starts]
        out_dir = Path(out_dir)
        out_dir.mkdir(parents=True, exist_ok=True)
        stamps = series.timestamps
        with open(out_dir / RECORDS, "w") as handle:
            for window_id, start in zip(ids, starts):
                s = int(start)
                record = {
                    "id": window_id,
                    "start": s,
                    "forecast_start": s + context_length,
                    "context_start_time": str(stamps[s]),
                    "forecast_start_time": str(stamps[s + context_length]),
                    "end_time": str(stamps[s + context_length + horizon - 1]),
                    "context": series.values[s : s + context_length].tolist(),
                    "target": series.values[s + context_length : s + context_length + horizon].tolist(),
                }
                handle.write(json.dumps(record) + "\n")
        examples = pd.DataFrame(
            {
                "id": ids,
                "split": split.astype(str),
                "fold": folds,
                "start": starts.astype(np.int64),
                "forecast_start": (starts + context_length).astype(np.int64),
                "cutoff": np.full(len(starts), cutoff, dtype=np.int64),
                "forecast_start_time": [str(stamps[int(s) + context_length]) for s in starts],
            }
        )
        write_parquet(out_dir / EXAMPLES, examples)
        summary.update(
            {
                "n_examples": len(ids),
                "n_train": int(np.sum(split == "train")),
                "n_test": int(np.sum(split == "test")),
                "cv_folds": cv_folds,
                "fold_sizes": np.bincount(folds, minlength=cv_folds).tolist(),
            }
        )
        return summary

    # ------------------------------------------------------------------ evaluation

    def evaluate(self, model: Any, tasks_dir: Path, params: dict[str, Any], seed: int) -> pd.DataFrame:
        """Per window: ``error`` = CRPS of ``num_samples`` sampled paths (mean over horizon steps),
        ``crps_scaled`` (CRPS over the context's mean absolute value, Chronos' scale), ``mase``
        (median path vs seasonal naive) and the ``cheap__*`` context statistics. Window ``i``'s
        samples are drawn with seed ``window_seed(seed, i)``, whatever the batch size."""
        examples, contexts, targets = read_windows(tasks_dir)
        _check_context(model, contexts.shape[1])
        num_samples = int(params.get("num_samples", 20))
        estimator = str(params.get("crps_estimator", "qd"))
        season = int(params.get("season", 24))
        batch_size = int(params.get("batch_size", 32))
        crps = np.empty(len(contexts))
        mase = np.empty(len(contexts))
        for start in _batches(len(contexts), batch_size, "evaluate chronos"):
            stop = min(start + batch_size, len(contexts))
            seeds = [patching.window_seed(seed, i) for i in range(start, stop)]
            samples = patching.sample_forecasts(
                model,
                contexts[start:stop],
                seeds,
                num_samples,
                targets.shape[1],
                temperature=params.get("temperature"),
                top_k=params.get("top_k"),
                top_p=params.get("top_p"),
            )
            crps[start:stop] = patching.crps_per_window(samples, targets[start:stop], estimator)
            mase[start:stop] = patching.seasonal_naive_mase(contexts[start:stop], targets[start:stop], np.median(samples, axis=1), season)
        mean_abs = np.abs(contexts).mean(axis=1)
        table = pd.DataFrame(
            {
                "id": examples["id"].to_numpy(),
                "error": crps,
                "crps_scaled": crps / np.where(mean_abs > 0, mean_abs, 1.0),
                "mase": mase,
            }
        )
        return pd.concat([table, cheap_feature_table(contexts, season)], axis=1)

    # ------------------------------------------------------------------ activations

    def extract(self, model: Any, tasks_dir: Path, layer: int, out_zarr: Path, params: dict[str, Any]) -> dict[str, Any]:
        """Encoder block ``layer``'s output at every context position (EOS excluded) of every
        window, streamed to zarr: ``tokens`` [N*C, d], ``last`` (step C-1), ``mean`` (over the
        C steps), ``offsets``. ``tokens`` is written in whole chunks
        (:class:`~sae_difficulty.saes.cache.ChunkAlignedWriter`: no chunk is read back and
        rewritten); ``last`` and ``mean`` ([N, d], small) are filled in memory and written
        once. Memory: one batch of windows, one chunk, and ``last``/``mean``."""
        import zarr

        layer = patching.check_layer(model, layer)
        examples, contexts, _ = read_windows(tasks_dir)
        _check_context(model, contexts.shape[1])
        n, steps, d = len(contexts), contexts.shape[1], _d_model(model)
        group = zarr.open_group(str(out_zarr), mode="w", zarr_format=3)

        def row_array(name: str, rows: int) -> Any:
            return group.create_array(name, shape=(rows, d), chunks=(min(CHUNK_ROWS, rows), d), dtype="float32", compressors=None)

        group.create_array("offsets", shape=(n + 1,), dtype="int64", compressors=None)[...] = np.arange(n + 1, dtype=np.int64) * steps
        last = np.empty((n, d), dtype=np.float32)
        mean = np.empty((n, d), dtype=np.float32)
        batch_size = int(params.get("batch_size", 32))
        with ChunkAlignedWriter(row_array("tokens", n * steps)) as writer:
            for start in _batches(n, batch_size, f"extract block {layer}"):
                stop = min(start + batch_size, n)
                states = self._context_states(model, contexts[start:stop], layer)  # [B, C, d]
                writer.append(states.reshape(-1, d))
                last[start:stop] = states[:, -1]
                mean[start:stop] = states.mean(axis=1, dtype=np.float64)
        row_array("last", n)[...] = last
        row_array("mean", n)[...] = mean
        return {
            "n_examples": n,
            "n_tokens": n * steps,
            "positions_per_example": steps,
            "d": d,
            "hook": f"encoder.block.{layer} output",
            "last": "last context step (position C-1; EOS excluded)",
            "mean": "mean over the C context steps",
        }

    @staticmethod
    def _context_states(model: Any, contexts: np.ndarray, layer: int) -> np.ndarray:
        """Block ``layer``'s output at the context positions, [B, C, d] float32 (no padding: equal lengths)."""
        _, _, _, context_mask, captured = patching.run_encoder(model, contexts, layer=layer, capture=True)
        mask = context_mask.to(captured.device)
        if not bool(mask.all(dim=0)[:-1].all()):
            raise InputError("a context contains missing values; expected complete windows")
        return captured[mask].reshape(len(contexts), -1, captured.shape[-1]).float().cpu().numpy()

    def training_activations(self, model: Any, layer: int, out_zarr: Path, params: dict[str, Any], seed: int) -> dict[str, Any]:
        """Token-level encoder states at ``layer`` from random windows of the training pool
        (synthetic series + ETTh1 before the cutoff): ``train`` from its train part,
        ``heldout`` from its held-out part, float32, 4096-row chunks, written batch by batch."""
        import zarr

        layer = patching.check_layer(model, layer)
        context_length = int(params.get("context_length") or model.model.config.context_length)
        _check_context(model, context_length)
        pool = data.training_pool(params, min_length=context_length)
        d = _d_model(model)
        batch_size = int(params.get("batch_size", 32))
        group = zarr.open_group(str(out_zarr), mode="w", zarr_format=3)
        sizes = {"train": int(params.get("tokens", 200_000)), "heldout": int(params.get("heldout_tokens", 20_000))}
        for stream, (name, n_rows) in enumerate(sizes.items()):
            if n_rows < 1:
                raise InputError(f"{'tokens' if name == 'train' else 'heldout_tokens'}: expected >= 1, got {n_rows}")
            series, sources = (pool.train, pool.train_source) if name == "train" else (pool.heldout, pool.heldout_source)
            n_windows = -(-n_rows // context_length)
            windows = data.sample_windows(
                series,
                sources,
                n_windows,
                context_length,
                context_length,
                np.random.default_rng([seed, 10 + stream]),
                float(params.get("etth1_probability", 0.5)),
            )
            array = group.create_array(name, shape=(n_rows, d), chunks=(min(CHUNK_ROWS, n_rows), d), dtype="float32", compressors=None)
            written = 0
            for start in _batches(n_windows, batch_size, f"SAE activations ({name})"):
                states = self._context_states(model, windows[start : start + batch_size], layer).reshape(-1, d)
                take = min(len(states), n_rows - written)
                array[written : written + take] = states[:take]
                written += take
        return {
            "train_tokens": sizes["train"],
            "heldout_tokens": sizes["heldout"],
            "d": d,
            "context_length": context_length,
            "pool": pool.summary,
        }

    # ------------------------------------------------------------------ SAE in the loop

    def spliced_loss(self, model: Any, sae: Any, layer: int, params: dict[str, Any], seed: int) -> dict[str, float]:
        """CRPS (in mean-scaled units, so synthetic and ETTh1 windows weigh alike) and teacher-forced
        cross-entropy on held-out training-pool windows: clean, with the SAE reconstruction spliced
        at every context position of block ``layer``, and with those positions zero-ablated; the
        same per-window sampling seeds in all three (common random numbers)."""
        from sae_difficulty.core.sae_metrics import loss_recovered

        layer = patching.check_layer(model, layer)
        patching.check_sae(sae, _d_model(model))
        config = model.model.config
        context_length = int(params.get("context_length") or config.context_length)
        _check_context(model, context_length)
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
        states = self._context_states(model, contexts[:batch_size], layer).reshape(-1, _d_model(model))
        ev = patching.check_sae_fidelity(sae, states, -np.inf if floor is None else float(floor))
        crps = {name: np.empty(len(windows)) for name in conditions}
        cross_entropy = {name: 0.0 for name in conditions}
        for start in _batches(len(windows), batch_size, "spliced CRPS"):
            stop = min(start + batch_size, len(windows))
            seeds = [patching.window_seed(seed, i) for i in range(start, stop)]
            for name, edit in conditions.items():
                samples = patching.sample_forecasts(
                    model, contexts[start:stop], seeds, num_samples, horizon, layer=layer if edit else None, edit=edit
                )
                crps[name][start:stop] = patching.crps_per_window(
                    samples / scales[start:stop, :, None], targets[start:stop] / scales[start:stop], estimator
                )
                cross_entropy[name] += self._teacher_forced_loss(model, windows[start:stop], layer, edit) * (stop - start)
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

    @staticmethod
    def _teacher_forced_loss(model: Any, windows: np.ndarray, layer: int, edit: patching.Edit | None) -> float:
        """The Chronos training loss of the windows, with ``edit`` applied to block ``layer``."""
        with torch.no_grad():
            if edit is None:
                return float(window_loss(model, windows))
            context_mask = patching.tokenize(model, windows[:, : -model.model.config.prediction_length])[3].to(model.model.device)
            with patching.block_output_hook(model, layer, lambda hidden: edit(hidden, context_mask)):
                return float(window_loss(model, windows))

    def causal_patch(
        self, model: Any, sae: Any, tasks_dir: Path, layer: int, features: list[int], params: dict[str, Any], seed: int
    ) -> pd.DataFrame:
        """Per window, feature f and positions in {"last", "all"}: ``delta`` = CRPS with the
        f-ablated reconstruction - CRPS with the reconstruction, both spliced at those positions
        of block ``layer``. With ``crn`` (default) every forecast of a window uses the same seed,
        so delta isolates the ablation (and is exactly 0 for a feature that is never active);
        ``crn: false`` draws each condition independently. Columns: id, feature, positions,
        delta, crps_ablated, crps_recon, crps_clean. Refuses an SAE whose explained variance on
        these windows is below ``min_explained_variance`` (default 0.5)."""
        layer = patching.check_layer(model, layer)
        patching.check_sae(sae, _d_model(model))
        d_sae = int(getattr(sae.cfg, "d_sae", 0) or 0)
        features = [int(f) for f in features]
        if not features or any(not 0 <= f < d_sae for f in features):
            raise InputError(f"features {features}: expected a non-empty list of SAE feature indices in [0, {d_sae})")
        positions = [str(p) for p in params.get("positions", POSITIONS)]
        if not positions or any(p not in POSITIONS for p in positions):
            raise InputError(f"positions {positions}: expected a non-empty subset of {list(POSITIONS)}")
        examples, contexts, targets = read_windows(tasks_dir)
        _check_context(model, contexts.shape[1])
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

        first = candidates[:batch_size]
        states = self._context_states(model, contexts[first], layer).reshape(-1, _d_model(model))
        ev = patching.check_sae_fidelity(sae, states, float(params.get("min_explained_variance", 0.5)))
        frames = []
        for start in _batches(len(candidates), batch_size, "causal patching"):
            indices = candidates[start : start + batch_size]
            clean = run(indices, ("clean", None, None), None)
            for p in positions:
                recon = run(indices, ("recon", p, None), patching.reconstruction_edit(sae, p))
                for f in features:
                    ablated = run(indices, ("ablate", p, f), patching.reconstruction_edit(sae, p, ablate=[f]))
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
