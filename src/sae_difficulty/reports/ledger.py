"""The run ledger: one row per store node of a config that holds a result.

Each row says what was run (model, hook point, stage, key params, SAE training
tokens), where and how long (hardware, wall time from the node's manifest), the
node's headline number with its CI, and a status from one rule
(:func:`ledger_status`):

* ``reproduced``: the CI excludes the null on the side a published claim predicts;
* ``novel``: the CI excludes the null and no published claim covers this measurement,
  or the CI lies on the other side of the claim (flagged ``novel (contradicts claim)``);
* ``inconclusive``: no CI, or the CI contains the null.

Headlines come from each stage's own output: the evaluation suite's nodes write
``headline.json`` (from their module's ``headline``); the study's stages are read by
the extractors in :data:`HEADLINES`.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import pandas as pd

from sae_difficulty.pipeline.plan import Node
from sae_difficulty.pipeline.store import MANIFEST, read_manifest
from sae_difficulty.pipeline.study_evals import EVAL_STAGES
from sae_difficulty.pipeline.study_synthetic import SYNTHETIC_RESULT_STAGES
from sae_difficulty.utils.errors import InputError
from sae_difficulty.utils.io import read_json
from sae_difficulty.utils.markdown import markdown_table_lines

HEADLINE_FILE = "headline.json"
#: Stages whose nodes hold a result (one ledger row each).
RESULT_STAGES = ("probe", "causal", "selective", "sae_quality", "sae_stability", "modular_stability", *EVAL_STAGES,
                 *SYNTHETIC_RESULT_STAGES)
COLUMNS = (
    "stage", "key", "node", "model", "hook_point", "params", "sae_tokens", "hardware", "wall_time_s",
    "metric", "value", "ci_low", "ci_high", "null", "claim", "status",
)  # fmt: skip
#: Params never worth a ledger cell (provenance or bulky).
SKIPPED_PARAMS = frozenset({"corpus", "etth1", "labels", "spliced_loss", "encode_fidelity", "saes", "content_sha256", "path"})


def ledger_status(value: float | None, ci_low: float | None, ci_high: float | None, null: float | None, claim_sign: int) -> str:
    """The ledger's status rule (module docstring). ``claim_sign``: +1/-1 the side a published
    claim predicts relative to the null, 0 when no published claim covers the measurement."""
    if null is None or ci_low is None or ci_high is None or any(map(_nan, (ci_low, ci_high))):
        return "inconclusive"
    if ci_low <= null <= ci_high:
        return "inconclusive"
    side = 1 if ci_low > null else -1
    if claim_sign == 0:
        return "novel"
    return "reproduced" if side == claim_sign else "novel (contradicts claim)"


def _nan(value: Any) -> bool:
    return isinstance(value, float) and math.isnan(value)


def _headline(metric: str, value: Any, ci: tuple[Any, Any] | None = None, null: float | None = None,
              claim: str = "", claim_sign: int = 0) -> dict[str, Any]:  # fmt: skip
    low, high = ci if ci is not None else (None, None)
    return {"metric": metric, "value": value, "ci_low": low, "ci_high": high, "null": null, "claim": claim, "claim_sign": claim_sign}


def _probe(directory: Path) -> dict[str, Any]:
    delta = read_json(directory / "probe.json")["ladder"]["deltas"]["P3-P1"]
    return _headline("ΔAUROC P3−P1 (SAE codes over cheap features)", delta["delta"], (delta["ci_low"], delta["ci_high"]), 0.0)


def _selective(directory: Path) -> dict[str, Any]:
    detail = read_json(directory / "selective.json")
    rung = detail["headline_rung"]
    return _headline(f"AURC of {rung} (lower is better)", detail["risk_coverage"][rung]["aurc"])


def _causal(directory: Path) -> dict[str, Any]:
    tests = read_json(directory / "causal.json")["by_positions"]["all"]["tests"]
    if not tests:
        return _headline("largest mean patching effect", None)
    top = max(tests, key=lambda t: abs(t["mean"]))
    return _headline(f"mean patching effect of feature {top['feature']} (largest |effect|)", top["mean"],
                     (top["ci_low"], top["ci_high"]), 0.0)  # fmt: skip


def _sae_quality(directory: Path) -> dict[str, Any]:
    detail = read_json(directory / "quality.json")
    return _headline("explained variance (held-out)", detail["explained_variance"])


def _sae_stability(directory: Path) -> dict[str, Any]:
    detail = read_json(directory / "stability.json")
    return _headline("PWMCC across seeds − random dictionaries", detail["gap_mean"], None, 0.0)


def _modular_stability(directory: Path) -> dict[str, Any]:
    stability = read_json(directory / "stability.json")["stability"]
    architecture = sorted(stability)[0]
    gaussian = stability[architecture]["controls"]["gaussian"]
    return _headline(
        f"PWMCC across seeds − Gaussian dictionaries ({architecture}, modular arithmetic)", gaussian["gap"],
        (gaussian["gap_ci_low"], gaussian["gap_ci_high"]), 0.0,
        "SAEs trained from different seeds share many features, well above chance (Paulo & Belrose 2025)", +1,
    )  # fmt: skip


HEADLINES: dict[str, Callable[[Path], dict[str, Any]]] = {
    "probe": _probe,
    "selective": _selective,
    "causal": _causal,
    "sae_quality": _sae_quality,
    "sae_stability": _sae_stability,
    "modular_stability": _modular_stability,
}


def node_headline(stage: str, directory: Path) -> dict[str, Any]:
    """The headline of a result node: its ``headline.json`` if it wrote one, else its stage's extractor."""
    if (directory / HEADLINE_FILE).is_file():
        return read_json(directory / HEADLINE_FILE)
    if stage not in HEADLINES:
        raise InputError(f"{directory}: stage {stage!r} has no {HEADLINE_FILE} and no ledger extractor")
    return HEADLINES[stage](directory)


def _ancestors(node: Node) -> Iterable[Node]:
    seen, queue = set(), list(node.parents.values())
    while queue:
        parent = queue.pop(0)
        if parent.id not in seen:
            seen.add(parent.id)
            yield parent
            queue.extend(parent.parents.values())


def describe_model(node: Node) -> str:
    """The backbone a node's result comes from: a hub name, or the demo model's shape."""
    backbone = next((n for n in _ancestors(node) if n.stage.endswith("backbone")), None)
    if backbone is None:
        synthetic = next((n for n in _ancestors(node) if n.stage == "synthetic_model"), None)
        if synthetic is not None:  # the ground-truth study: an sae-lens synthetic model, no backbone
            return f"sae-lens synthetic: {synthetic.params['num_features']} true features in d{synthetic.params['hidden_dim']}"
        return ""
    params = backbone.params
    if params.get("hub"):
        return params["hub"]
    family = params.get("modality") or backbone.stage.replace("_backbone", "")
    return f"demo {family} {params.get('size', '')} d{params.get('d_model')}×{params.get('n_layers')}".replace("  ", " ")


def hook_point(node: Node) -> str:
    """Where in the model the node's activations come from."""
    layers = node.params.get("layers")
    layer = node.params.get("layer")
    if layer is None:
        layer = next((n.params["layer"] for n in _ancestors(node) if "layer" in n.params), None)
    family = next((n.params.get("modality") or n.stage for n in _ancestors(node) if n.stage.endswith("backbone")), "")
    if layers:
        return ", ".join(f"blocks.{lay}.hook_resid_post" for lay in layers)
    if layer is None:
        return ""
    if family == "tsfm":
        return f"encoder.block.{layer} output"
    if node.stage == "eval_transcoder":
        return f"blocks.{layer}.ln2.hook_normalized → blocks.{layer}.hook_mlp_out"
    return f"blocks.{layer}.hook_resid_post"


def key_params(node: Node) -> str:
    """The node's own scalar params, ``k=v`` joined (provenance and bulky params left out)."""
    items = []
    for key, value in sorted(node.params.items()):
        if key in SKIPPED_PARAMS or isinstance(value, (dict, list)) or value is None:
            continue
        items.append(f"{key}={value}")
    return " ".join(items)


def sae_tokens(node: Node) -> int | None:
    sae = node if node.stage == "sae" else next((n for n in _ancestors(node) if n.stage == "sae"), None)
    return None if sae is None else int(sae.params["training_tokens"])


def hardware(manifest: dict[str, Any]) -> str:
    described = manifest.get("hardware") or {}
    parts = [manifest.get("host", "")]
    if described:
        parts.append(f"{described.get('cpus', '?')} CPUs")
        if described.get("gpu"):
            parts.append(described["gpu"])
    return ", ".join(p for p in parts if p)


def published_sae(node: Node) -> str:
    """``release=<release> sae_id=<id>`` of the published SAE (sae.pretrained) a node's result rests on, or ''."""
    source = node if node.stage == "sae_pretrained" else next((n for n in _ancestors(node) if n.stage == "sae_pretrained"), None)
    return "" if source is None else f"release={source.params['release']} sae_id={source.params['sae_id']}"


def describe_node(node: Node) -> dict[str, Any]:
    """What the ledger says about a node from the plan alone (Snakemake computes it when it parses).

    A result that rests on a published SAE names it (release and sae_id) first in its params."""
    params = " ".join(part for part in (published_sae(node), key_params(node)) if part)
    return {"stage": node.stage, "key": node.key, "node": node.id, "model": describe_model(node),
            "hook_point": hook_point(node), "params": params, "sae_tokens": sae_tokens(node)}  # fmt: skip


def ledger_rows(descriptions: Iterable[dict[str, Any]], store_root: str | Path) -> pd.DataFrame:
    """One row per described node (:func:`describe_node`; complete in ``store_root``), by stage then key."""
    rows = []
    for described in sorted(descriptions, key=lambda d: (d["stage"], d["key"])):
        directory = Path(store_root) / described["stage"] / described["node"]
        if not (directory / MANIFEST).is_file():
            raise InputError(f"{directory}: node not built (no {MANIFEST}); run the workflow before the ledger")
        manifest = read_manifest(directory)
        headline = node_headline(described["stage"], directory)
        rows.append({
            **described, "hardware": hardware(manifest), "wall_time_s": manifest.get("wall_time_s"),
            "metric": headline["metric"], "value": headline["value"], "ci_low": headline["ci_low"],
            "ci_high": headline["ci_high"], "null": headline["null"], "claim": headline.get("claim", ""),
            "status": ledger_status(headline["value"], headline["ci_low"], headline["ci_high"], headline["null"],
                                    int(headline.get("claim_sign", 0))),
        })  # fmt: skip
    table = pd.DataFrame(rows, columns=list(COLUMNS))
    table["sae_tokens"] = table["sae_tokens"].astype("Int64")  # counts, with <NA> where no SAE is upstream
    return table


def ledger_markdown(table: pd.DataFrame, title: str) -> str:
    """The ledger as a markdown page: a status count, then one table row per node."""
    counts = table["status"].value_counts().sort_index()
    lines = [f"# Run ledger: {title}", "", "Status rule (sae_difficulty.reports.ledger.ledger_status): *reproduced* = the CI excludes the null "
             "on the side a published claim predicts; *novel* = the CI excludes the null with no published claim "
             "(or against it); *inconclusive* = no CI or the CI contains the null.", "",
             "Status counts: " + ", ".join(f"{status}: {count}" for status, count in counts.items()), ""]  # fmt: skip
    shown = ("stage", "key", "node", "model", "hook_point", "params", "sae_tokens", "hardware", "wall_time_s",
             "metric", "value", "ci_low", "ci_high", "status")  # fmt: skip
    lines += markdown_table_lines(table[list(shown)])
    claims = table.loc[table["claim"].astype(bool), ["key", "claim"]]
    if len(claims):
        lines += ["", "## Published claims checked", ""]
        lines += [f"- `{row.key}`: {row.claim}" for row in claims.itertuples(index=False)]
    return "\n".join(lines) + "\n"
