"""What the evaluation-suite stages share: checked SAE loading and writing one evaluation's outputs."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from sae_difficulty.evals.base import EvalResult, checked_headline, get_evaluation
from sae_difficulty.evals.encode_fidelity import (
    EncodeFidelityConfig,
    require_encode_fidelity,
)
from sae_difficulty.reports.ledger import HEADLINE_FILE
from sae_difficulty.saes.loading import load_sae
from sae_difficulty.utils.io import write_json, write_parquet


def load_checked_sae(sae_dir: Path, rows: Any, fidelity: dict[str, Any], expected_d_in: int | None = None):
    """Load an sae-lens SAE and require that it reproduces its checkpoint's own codes on ``rows``.

    Returns ``(sae, fidelity result dict)``; a failing check raises InputError (the stage stops).
    """
    config = EncodeFidelityConfig.from_dict(fidelity)
    sample = np.asarray(rows[: config.n_rows], dtype=np.float32)
    sae = load_sae(sae_dir, expected_d_in=expected_d_in if expected_d_in is not None else sample.shape[1])
    result = require_encode_fidelity(sae, sae_dir, "saelens", sample, config)
    return sae, result.to_dict()


def write_evaluation(out: Path, name: str, result: EvalResult, checks: dict[str, Any] | None = None, *,
                     evaluation: str | None = None, claim_sign: int | None = None) -> None:  # fmt: skip
    """Write one evaluation node's files, each validated through the registered evaluation's models.

    ``<name>.json`` (the result, valid against the evaluation's generated schema),
    ``<name>.parquet`` (its table), ``headline.json`` (for the ledger, with ``claim_sign``:
    the side of the null the cited claim predicts; the registered one unless given),
    ``<name>.png`` and ``checks.json`` (the encode-fidelity checks of the SAEs it loaded).
    ``evaluation``: the registered evaluation whose models, headline and plot apply
    (default ``name``; ``eval_external`` writes ``external.*`` with ``cross_domain``'s).
    """
    entry = get_evaluation(evaluation or name)
    document = result.to_dict()
    entry.output.check(document)
    headline = checked_headline(entry, result)
    write_json(out / f"{name}.json", document)
    write_parquet(out / f"{name}.parquet", result.table())
    write_json(out / HEADLINE_FILE, {**headline, "claim_sign": entry.claim_sign if claim_sign is None else claim_sign})
    if checks is not None:
        write_json(out / "checks.json", checks)
    if entry.plot is not None:
        entry.plot(result, out / f"{name}.png")
