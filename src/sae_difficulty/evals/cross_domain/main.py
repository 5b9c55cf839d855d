"""Cross-domain generalization of SAEs: does an SAE trained on prose reconstruct code (and back)?

Every SAE is evaluated on every domain's held-out activation rows, in-domain and
out-of-domain (Kissane et al. 2024, "SAEs (usually) transfer between base and chat
models"; SAEBench's reconstruction metrics). Per (SAE, eval domain):

* ``mse`` (mean over rows *and* dimensions of the squared error), ``explained_variance``
  (``1 - SSE/SST`` with per-dimension means, via
  :class:`~sae_difficulty.core.sae_metrics.ReconstructionAccumulator`), ``l0`` (mean active
  codes per row), ``l1`` (mean sum of |codes| per row), ``dead_fraction`` (features that
  never fire on these rows), ``n_rows``;
* the generalization gap per SAE: in-domain EV minus the mean out-of-domain EV, with a
  percentile bootstrap CI that resamples contiguous blocks of ``bootstrap_block_rows`` rows
  per domain (rows of one text window are correlated; set the block to ``context_length -
  1`` to resample whole windows). Each replicate keeps the full-sample per-dimension mean
  (a ratio-estimator bootstrap of ``SSE/SST``), so it costs two dot products per replicate;
* feature selectivity (:func:`feature_selectivity`): the share of a feature's mean
  activation per token that falls on its preferred domain;
* a markdown page of the most domain-selective features with their top-activating
  contexts (:func:`~sae_difficulty.evals.cross_domain.contexts.top_contexts_markdown`).

Hand-written because sae-lens evaluates one SAE on one activation store and SAEBench is
not a dependency; the per-row numbers come from the shared ``core.sae_metrics``.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import torch
from tqdm.auto import tqdm

from sae_difficulty.core import sae_metrics
from sae_difficulty.core.stats import percentile_interval
from sae_difficulty.evals.base import EvalResult
from sae_difficulty.evals.cross_domain.config import CrossDomainConfig
from sae_difficulty.evals.cross_domain.output import CrossDomainOutput
from sae_difficulty.saes.cache import iter_row_blocks
from sae_difficulty.utils.errors import InputError
from sae_difficulty.utils.io import to_jsonable

# A feature whose preferred domain holds more than this share of its mass counts as domain-specific.
SELECTIVE_THRESHOLD = 0.9


# --------------------------------------------------------------------------- one SAE on one domain


def check_rows(sae: Any, rows: Any, name: str) -> int:
    shape = tuple(getattr(rows, "shape", ()))
    if len(shape) != 2 or shape[1] != sae.cfg.d_in:
        raise InputError(f"{name}: expected activation rows [n, {sae.cfg.d_in}] for this SAE, got shape {shape}")
    if shape[0] == 0:
        raise InputError(f"{name}: no rows")
    return int(shape[0])


def _aligned_blocks(rows: Any, batch_size: int, block_rows: int) -> Iterator[tuple[int, np.ndarray]]:
    """(start row, float32 block) batches whose size is a multiple of ``block_rows``, so no
    bootstrap block straddles two batches."""
    step = max(block_rows, (batch_size // block_rows) * block_rows)
    start = 0
    for block in iter_row_blocks(rows, step):
        yield start, block
        start += block.shape[0]


def _per_block(values: np.ndarray, block_rows: int) -> np.ndarray:
    """Sums of consecutive groups of ``block_rows`` entries (the last group may be shorter)."""
    return np.add.reduceat(values, np.arange(0, values.shape[0], block_rows), axis=0)


@dataclass
class _DomainVariance:
    """Per bootstrap block: ``SST_b = sum ||x - mean(x)||^2`` around the domain's overall mean."""

    block_sst: np.ndarray


def _domain_variance(rows: Any, batch_size: int, block_rows: int) -> _DomainVariance:
    """One numpy pass: per-block means and centred sums of squares, combined exactly (as
    Chan's update does) so a large common offset does not cancel catastrophically."""
    counts, means, centred = [], [], []
    for _, batch in _aligned_blocks(rows, batch_size, block_rows):
        x = batch.astype(np.float64)
        for start in range(0, x.shape[0], block_rows):
            block = x[start : start + block_rows]
            mean = block.mean(axis=0)
            counts.append(block.shape[0])
            means.append(mean)
            centred.append(float(((block - mean) ** 2).sum()))
    count = np.asarray(counts, dtype=np.float64)
    block_means = np.asarray(means)
    overall = (count[:, None] * block_means).sum(axis=0) / count.sum()
    return _DomainVariance(np.asarray(centred) + count * ((block_means - overall) ** 2).sum(axis=1))


@dataclass
class _SAEPass:
    """What one streamed pass of an SAE over one domain's rows accumulates."""

    metrics: dict[str, float]
    mean_activation: np.ndarray  # [d_sae], mean code per row (token)
    block_sse: np.ndarray  # [n_blocks]


@torch.no_grad()
def _run_sae(sae: Any, rows: Any, batch_size: int, block_rows: int, name: str, progress: bool) -> _SAEPass:
    n_rows = check_rows(sae, rows, name)
    d_sae = int(sae.cfg.d_sae)
    reconstruction = sae_metrics.ReconstructionAccumulator()
    firing = sae_metrics.FiringAccumulator(d_sae)
    code_sum = np.zeros(d_sae, dtype=np.float64)
    l1_sum = 0.0
    block_sse = []
    step = max(block_rows, (batch_size // block_rows) * block_rows)
    batches = _aligned_blocks(rows, batch_size, block_rows)
    for _, block in tqdm(batches, total=-(-n_rows // step), desc=f"evaluate {name}", disable=not progress):
        codes_t = sae.encode(torch.from_numpy(block).to(sae.device))
        x_hat = sae.decode(codes_t).float().cpu().numpy()
        codes = codes_t.double().cpu().numpy()
        reconstruction.update(block, x_hat)
        firing.update(codes)
        code_sum += codes.sum(axis=0)
        l1_sum += float(np.abs(codes).sum())
        residual = block.astype(np.float64) - x_hat.astype(np.float64)
        block_sse.append(_per_block(np.einsum("ij,ij->i", residual, residual), block_rows))
    summary = reconstruction.result()
    metrics = {
        "mse": summary["mse"] / int(sae.cfg.d_in),  # accumulator's mse sums over dims; here mean over dims too
        "explained_variance": summary["explained_variance"],
        "l0": firing.mean_l0(),
        "l1": l1_sum / n_rows,
        "dead_fraction": sae_metrics.dead_fraction(firing.frequencies()),
        "n_rows": n_rows,
    }
    return _SAEPass(metrics, code_sum / n_rows, np.concatenate(block_sse))


def reconstruction_metrics(sae: Any, rows: Any, batch_size: int = 2048) -> dict[str, float]:
    """``mse, explained_variance, l0, l1, dead_fraction, n_rows`` of ``sae`` on numpy/zarr rows ``[n, d_in]``.

    ``mse`` is the mean over rows and dimensions of ``(x - x_hat)^2``; ``explained_variance``
    is ``1 - SSE/SST`` around the per-dimension mean; ``l0``/``l1`` are the mean number / summed
    magnitude of non-zero codes per row; ``dead_fraction`` the share of features that never
    fire on these rows. Rows are encoded ``batch_size`` at a time without gradients.
    """
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise InputError(f"batch_size: expected an integer >= 1, got {batch_size!r}")
    return _run_sae(sae, rows, batch_size, 1, "rows", progress=False).metrics


# --------------------------------------------------------------------------- selectivity


def feature_selectivity(mean_activation: Mapping[str, np.ndarray]) -> pd.DataFrame:
    """Per feature: which domain it prefers and how much of its activation mass lies there.

    ``mean_activation[domain]`` is the feature's mean activation per token on that domain
    ([d_sae], non-negative), so domains with different token counts weigh equally.
    Columns: ``feature``, ``preferred_domain``, ``selectivity`` (= max share, between
    ``1/n_domains`` and 1), ``mass_<domain>`` per domain. Features with zero mass
    everywhere get ``selectivity`` NaN and ``preferred_domain`` None; ties go to the
    first domain in mapping order.
    """
    if not isinstance(mean_activation, Mapping) or len(mean_activation) < 1:
        raise InputError("mean_activation: expected a non-empty mapping domain -> [d_sae] array")
    domains = [str(d) for d in mean_activation]
    masses = []
    for domain, values in mean_activation.items():
        array = np.asarray(values, dtype=np.float64)
        if array.ndim != 1 or array.size == 0:
            raise InputError(f"mean_activation[{domain!r}]: expected a non-empty 1-D array, got shape {array.shape}")
        if masses and array.size != masses[0].size:
            raise InputError(f"mean_activation[{domain!r}]: {array.size} features, expected {masses[0].size}")
        if not np.all(np.isfinite(array)) or np.any(array < 0):
            raise InputError(f"mean_activation[{domain!r}]: expected finite non-negative mean activations")
        masses.append(array)
    stacked = np.vstack(masses)  # [n_domains, d_sae]
    total = stacked.sum(axis=0)
    live = total > 0
    preferred = np.argmax(stacked, axis=0)
    selectivity = np.full(total.size, np.nan)
    selectivity[live] = stacked[preferred[live], np.flatnonzero(live)] / total[live]
    frame = pd.DataFrame(
        {
            "feature": np.arange(total.size, dtype=np.int64),
            "preferred_domain": pd.Series([domains[i] if ok else None for i, ok in zip(preferred, live)], dtype=object),
            "selectivity": selectivity,
        }
    )
    for domain, mass in zip(domains, masses):
        frame[f"mass_{domain}"] = mass
    return frame


def _selectivity_summary(name: str, frame: pd.DataFrame, domains: list[str]) -> dict[str, Any]:
    live = frame["selectivity"].notna()
    values = frame.loc[live, "selectivity"].to_numpy(float)
    preferred = frame.loc[live, "preferred_domain"]
    return {
        "sae": name,
        "n_features": int(len(frame)),
        "n_live": int(live.sum()),
        "mean_selectivity": float(values.mean()) if values.size else float("nan"),
        "share_selective": float(np.mean(values > SELECTIVE_THRESHOLD)) if values.size else float("nan"),
        "preferred_counts": {d: int((preferred == d).sum()) for d in domains},
    }


# --------------------------------------------------------------------------- evaluation


@dataclass
class CrossDomainResult(EvalResult):
    """Every SAE on every domain, the generalization gaps and the feature selectivity.

    ``rows``: one row per (sae, eval_domain); ``gaps``: one row per SAE with the in-domain
    EV minus the mean out-of-domain EV and its block-bootstrap CI; ``selectivity_summary``:
    one row per SAE; ``selectivity[name]``: the full per-feature frame of that SAE;
    ``mean_gap``: the headline (mean gap over SAEs with CI).
    """

    config: CrossDomainConfig
    domains: list[str]
    rows: pd.DataFrame
    gaps: pd.DataFrame
    selectivity_summary: pd.DataFrame
    selectivity: dict[str, pd.DataFrame]
    mean_gap: dict[str, Any]
    mean_activation: dict[str, dict[str, np.ndarray]] = field(repr=False, default_factory=dict)

    def table(self) -> pd.DataFrame:
        """The per-(sae, eval_domain) metrics table."""
        return self.rows.copy()

    def selectivity_table(self) -> pd.DataFrame:
        """All per-feature selectivity frames stacked, with an ``sae`` column (for parquet)."""
        frames = [frame.assign(sae=name) for name, frame in self.selectivity.items()]
        stacked = pd.concat(frames, ignore_index=True)
        return stacked[["sae", *[c for c in stacked.columns if c != "sae"]]]

    OUTPUT = CrossDomainOutput

    def document(self) -> dict[str, Any]:
        """The JSON summary (see :class:`CrossDomainOutput`)."""
        summary = self.selectivity_summary.to_dict(orient="records")
        return (
            {
                "config": self.config.to_dict(),
                "domains": list(self.domains),
                "rows": self.rows.to_dict(orient="records"),
                "gaps": self.gaps.to_dict(orient="records"),
                "selectivity": summary,
                "mean_gap": dict(self.mean_gap),
                "headline": headline(self),
            }
        )


def _check_inputs(saes: Mapping[str, tuple[Any, str, str]], heldout: Mapping[str, Any]) -> list[str]:
    if not isinstance(heldout, Mapping) or len(heldout) < 2:
        raise InputError("heldout: expected a mapping with at least two domains (in- and out-of-domain)")
    if not isinstance(saes, Mapping) or not saes:
        raise InputError("saes: expected a non-empty mapping name -> (sae, train_domain, architecture)")
    domains = [str(d) for d in heldout]
    for name, entry in saes.items():
        if not isinstance(entry, (tuple, list)) or len(entry) != 3:
            raise InputError(f"saes[{name!r}]: expected a tuple (sae, train_domain, architecture)")
        sae, train_domain, _ = entry
        if train_domain not in heldout:
            raise InputError(f"saes[{name!r}]: train domain {train_domain!r} has no held-out rows (domains: {domains})")
        for domain, rows in heldout.items():
            check_rows(sae, rows, f"heldout[{domain!r}]")
    return domains


def _bootstrap_weights(config: CrossDomainConfig, block_counts: Mapping[str, int]) -> dict[str, np.ndarray]:
    """Multinomial block counts [n_boot, n_blocks] per domain (domains resampled independently,
    the same resample shared by every SAE so the SAEs' gaps are paired)."""
    rng = np.random.default_rng(config.seed)
    return {
        domain: rng.multinomial(n, np.full(n, 1.0 / n), size=config.n_boot).astype(np.float64)
        for domain, n in block_counts.items()
    }


def evaluate_cross_domain(
    saes: Mapping[str, tuple[Any, str, str]],
    heldout: Mapping[str, Any],
    config: CrossDomainConfig | None = None,
    progress: bool = False,
) -> CrossDomainResult:
    """Evaluate every SAE on every domain's held-out rows (in- and out-of-domain).

    ``saes`` maps a name to ``(sae, train_domain, architecture)`` (sae-lens SAEs);
    ``heldout`` maps a domain to numpy/zarr activation rows ``[n, d_in]``.
    """
    config = config or CrossDomainConfig()
    domains = _check_inputs(saes, heldout)
    block = config.bootstrap_block_rows
    variance = {d: _domain_variance(heldout[d], config.batch_size, block) for d in domains}
    weights = _bootstrap_weights(config, {d: variance[d].block_sst.size for d in domains}) if config.n_boot else {}

    records, gap_records, summaries = [], [], []
    selectivity: dict[str, pd.DataFrame] = {}
    mean_activation: dict[str, dict[str, np.ndarray]] = {}
    gap_replicates = []
    for name, (sae, train_domain, architecture) in saes.items():
        passes = {d: _run_sae(sae, heldout[d], config.batch_size, block, f"{name} on {d}", progress) for d in domains}
        for domain in domains:
            records.append(
                {
                    "sae": str(name),
                    "architecture": str(architecture),
                    "train_domain": str(train_domain),
                    "eval_domain": domain,
                    "in_domain": domain == train_domain,
                    **passes[domain].metrics,
                }
            )
        others = [d for d in domains if d != train_domain]
        in_ev = passes[train_domain].metrics["explained_variance"]
        out_ev = float(np.mean([passes[d].metrics["explained_variance"] for d in others]))
        low = high = float("nan")
        if config.n_boot:

            def replicate_ev(domain: str) -> np.ndarray:
                w = weights[domain]
                return 1.0 - (w @ passes[domain].block_sse) / (w @ variance[domain].block_sst)

            replicates = replicate_ev(train_domain) - np.mean([replicate_ev(d) for d in others], axis=0)
            gap_replicates.append(replicates)
            low, high = percentile_interval(replicates)
        gap_records.append(
            {
                "sae": str(name),
                "architecture": str(architecture),
                "train_domain": str(train_domain),
                "in_domain_ev": in_ev,
                "out_of_domain_ev": out_ev,
                "gap": in_ev - out_ev,
                "ci_low": low,
                "ci_high": high,
            }
        )
        mean_activation[str(name)] = {d: passes[d].mean_activation for d in domains}
        selectivity[str(name)] = feature_selectivity(mean_activation[str(name)])
        summaries.append(_selectivity_summary(str(name), selectivity[str(name)], domains))

    gaps = pd.DataFrame(gap_records)
    mean_low = mean_high = float("nan")
    if gap_replicates:
        mean_low, mean_high = percentile_interval(np.mean(gap_replicates, axis=0))
    mean_gap = {
        "value": float(gaps["gap"].mean()),
        "ci_low": mean_low,
        "ci_high": mean_high,
        "n_boot": config.n_boot,
        "n_saes": len(gaps),
    }
    return CrossDomainResult(
        config=config,
        domains=domains,
        rows=pd.DataFrame(records),
        gaps=gaps,
        selectivity_summary=pd.DataFrame(summaries),
        selectivity=selectivity,
        mean_gap=mean_gap,
        mean_activation=mean_activation,
    )


def headline(result: CrossDomainResult) -> dict[str, Any]:
    """Mean (over SAEs) drop in explained variance from the training domain to the other domains."""
    gap = result.mean_gap
    return to_jsonable(
        {
            "metric": "mean_out_of_domain_explained_variance_drop",
            "value": gap["value"],
            "ci_low": gap["ci_low"],
            "ci_high": gap["ci_high"],
            "null": 0.0,
            "claim": "SAEs reconstruct their training domain better than another domain "
            "(domain-specific features; Kissane et al. 2024 / SAEBench)",
        }
    )
