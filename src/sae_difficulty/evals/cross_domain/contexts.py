"""The markdown page of one SAE's most domain-selective features and their top-activating contexts."""

from __future__ import annotations

import html
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
import pandas as pd
import torch

from sae_difficulty.evals.cross_domain.config import CrossDomainConfig
from sae_difficulty.evals.cross_domain.main import check_rows
from sae_difficulty.saes.cache import iter_row_blocks
from sae_difficulty.utils.errors import InputError

_NEWLINE_MARK = "⏎"


def _token_text(decode_token: Callable[[int], str], token: int) -> str:
    text = html.escape(str(decode_token(int(token))), quote=False)
    text = text.replace("\r\n", _NEWLINE_MARK).replace("\n", _NEWLINE_MARK).replace("\r", _NEWLINE_MARK)
    return text.replace("|", "&#124;")  # a bare pipe would end the markdown table cell


def _check_alignment(domain: str, rows: Any, tokens: Any) -> np.ndarray:
    tokens = np.asarray(tokens)
    if tokens.ndim != 2 or tokens.shape[1] < 2 or not np.issubdtype(tokens.dtype, np.integer):
        raise InputError(f"heldout_tokens[{domain!r}]: expected an int array [n_windows, context_length >= 2]")
    capacity = tokens.shape[0] * (tokens.shape[1] - 1)
    if int(rows.shape[0]) > capacity:
        raise InputError(
            f"heldout_rows[{domain!r}]: {rows.shape[0]} rows but the token windows hold only {capacity} positions"
        )
    return tokens


@torch.no_grad()
def _top_activations(
    sae: Any, rows: Any, features: np.ndarray, n_top: int, batch_size: int
) -> tuple[np.ndarray, np.ndarray]:
    """Per selected feature the ``n_top`` largest activations and their row indices [n_features, <= n_top]."""
    best_values = np.empty((features.size, 0))
    best_rows = np.empty((features.size, 0), dtype=np.int64)
    start = 0
    for block in iter_row_blocks(rows, batch_size):
        codes = sae.encode(torch.from_numpy(block).to(sae.device)).double().cpu().numpy()[:, features].T
        values = np.concatenate([best_values, codes], axis=1)
        indices = np.concatenate(
            [best_rows, np.broadcast_to(np.arange(start, start + block.shape[0]), codes.shape)], axis=1
        )
        order = np.lexsort((indices, -values), axis=1)[:, :n_top]  # largest first, earlier row on ties
        best_values = np.take_along_axis(values, order, axis=1)
        best_rows = np.take_along_axis(indices, order, axis=1)
        start += block.shape[0]
    return best_values, best_rows


def top_contexts_markdown(
    sae: Any,
    name: str,
    heldout_rows: Mapping[str, Any],
    heldout_tokens: Mapping[str, np.ndarray],
    decode_token: Callable[[int], str],
    selectivity: pd.DataFrame,
    config: CrossDomainConfig | None = None,
) -> str:
    """Markdown page of the ``n_top_features`` most selective live features of one SAE.

    Per feature: preferred domain, selectivity, and the ``n_top_contexts`` top-activating
    contexts across domains, each the ``context_tokens`` tokens up to and including the
    activating one (BOS left out), the activating token in ``<mark>…</mark>``, text
    HTML-escaped with newlines shown as ⏎. Ties in selectivity go to the feature with more
    total mass, then the lower index.

    Alignment contract: ``heldout_tokens[domain]`` is ``[n_windows, context_length]`` with
    BOS at position 0, and row ``i`` of ``heldout_rows[domain]`` is the residual at window
    ``i // (context_length - 1)``, position ``1 + i % (context_length - 1)``.
    """
    config = config or CrossDomainConfig()
    if set(heldout_rows) != set(heldout_tokens):
        raise InputError(
            f"heldout_tokens: domains {sorted(heldout_tokens)} do not match heldout_rows {sorted(heldout_rows)}"
        )
    required = {"feature", "selectivity", "preferred_domain"}
    if not isinstance(selectivity, pd.DataFrame) or not required <= set(selectivity.columns):
        raise InputError(f"selectivity: expected the frame of feature_selectivity with columns {sorted(required)}")
    tokens = {d: _check_alignment(d, heldout_rows[d], heldout_tokens[d]) for d in heldout_rows}
    for domain, rows in heldout_rows.items():
        check_rows(sae, rows, f"heldout_rows[{domain!r}]")

    mass_columns = [c for c in selectivity.columns if c.startswith("mass_")]
    live = selectivity[selectivity["selectivity"].notna()].copy()
    live["_mass"] = live[mass_columns].sum(axis=1) if mass_columns else 0.0
    chosen = live.sort_values(["selectivity", "_mass", "feature"], ascending=[False, False, True], kind="stable")
    chosen = chosen.head(config.n_top_features)
    features = chosen["feature"].to_numpy(np.int64)

    candidates = []  # per domain: (values, rows) [n_features, n_top]
    for domain in heldout_rows:
        values, rows = _top_activations(sae, heldout_rows[domain], features, config.n_top_contexts, config.batch_size)
        candidates.append((domain, values, rows))

    lines = [
        f"# Top-activating contexts: {html.escape(str(name), quote=False)}",
        "",
        f"The {features.size} most domain-selective live features (selectivity = share of the feature's "
        "mean activation per token on its preferred domain). Contexts show up to "
        f"{config.context_tokens} tokens ending at the activating token (<mark>highlighted</mark>); "
        f"{_NEWLINE_MARK} is a newline.",
        "",
    ]
    if features.size == 0:
        lines.append("No live features on these rows.")
    for position, (_, feature_row) in enumerate(chosen.iterrows()):
        feature = int(feature_row["feature"])
        lines += [
            f"## Feature {feature}: prefers {feature_row['preferred_domain']} "
            f"(selectivity {float(feature_row['selectivity']):.3f})",
            "",
            "| rank | domain | activation | context |",
            "|---:|---|---:|---|",
        ]
        pool = [
            (float(value), order, domain, int(row))
            for order, (domain, values, rows) in enumerate(candidates)
            for value, row in zip(values[position], rows[position])
            if value > 0
        ]
        pool.sort(key=lambda item: (-item[0], item[1], item[3]))
        for rank, (value, _, domain, row) in enumerate(pool[: config.n_top_contexts], start=1):
            window_tokens = tokens[domain]
            span = window_tokens.shape[1] - 1
            window, token_position = divmod(row, span)
            token_position += 1
            first = max(1, token_position - config.context_tokens + 1)
            pieces = [_token_text(decode_token, t) for t in window_tokens[window, first : token_position + 1]]
            pieces[-1] = f"<mark>{pieces[-1]}</mark>"
            lines.append(f"| {rank} | {domain} | {value:.4g} | {''.join(pieces)} |")
        if not pool:
            lines.append("| – | – | – | (never fired on these rows) |")
        lines.append("")
    return "\n".join(lines)
