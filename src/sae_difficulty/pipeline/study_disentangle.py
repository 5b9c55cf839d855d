"""The LM's 2x2 causal disentanglement (``llm.causal.disentangle``): which SAE x which patch.

The headline causal node of an LM dataset patches with the boundary SAE (source
``task_train``: fitted to the last prompt token of the training examples) at the boundary
position and at every prompt position. Whether an effect at every position comes from the
positions patched or from an SAE patched where it was never fitted is only separable with
a second SAE fitted to every prompt position of the same training split (the original
study's all-position SAE). This module declares that SAE beside the boundary one, on the
headline layer of each dataset:

* ``llm/<dataset>/L<layer>/allpos/activations``: the training split's every prompt position,
  cut from the same extract node (source ``task_train_allpos``);
* ``llm/<dataset>/L<layer>/allpos/<arch>-x<expansion>-s<seed>``: one SAE, the boundary SAE's recipe;
* its codes and its headline probe (the headline probe's params, so the ablated features are
  this SAE's own top L1-probe features);
* ``llm/<dataset>/causal-allpos-sae``: the headline causal node's params and parents with this
  SAE, its cache and its probe (no ``sae_positions`` row restriction: the SAE was fitted to
  every prompt position).

Every param is copied from the headline nodes, so the two causal nodes differ only in the SAE.
None of these nodes is a headline column, a sweep row or an SAE-table row; the synthesis
reads the second causal node under the role ``<column>__causal_allpos_sae``.
"""

from __future__ import annotations

from typing import Any

from sae_difficulty.pipeline.plan import Node, Plan
from sae_difficulty.pipeline.study_saes import task_activation_params

ALLPOS_SOURCE = "task_train_allpos"
#: The param that restricts codes / causal to a boundary SAE's rows (left out for the all-position SAE).
BOUNDARY_ROWS = "sae_positions"
ROLE_SUFFIX = "causal_allpos_sae"


def disentangled(config: dict[str, Any], modality: str) -> bool:
    """True when the plan adds the all-position SAE beside the boundary SAE for ``modality``."""
    return modality == "llm" and bool(config["llm"]["causal"].get("disentangle"))


def add_allpos_causal(plan: Plan, config: dict[str, Any], dataset: str, boundary_causal: Node) -> Node:
    """Declare the all-position SAE of ``dataset`` on the headline layer, its codes and probe, and
    the causal node that patches with it; return that causal node.

    ``boundary_causal`` is the dataset's headline causal node (boundary SAE, headline probe):
    the layer, extract node, SAE recipe, probe params and causal params are read from it.
    """
    boundary_sae, headline_probe = boundary_causal.parents["sae"], boundary_causal.parents["probe"]
    extract = headline_probe.parents["extract"]
    layer = int(extract.params["layer"])
    scope = f"llm/{dataset}/L{layer}/allpos"
    acts = plan.add("sae_activations", f"{scope}/activations",
                    task_activation_params(config, "llm", dataset, layer, ALLPOS_SOURCE), {"extract": extract})  # fmt: skip
    recipe = boundary_sae.params
    recipe_name = f"{recipe['architecture']}-x{recipe['expansion']}"
    sae = plan.add("sae", f"{scope}/{recipe_name}-s{recipe['seed']}", dict(recipe), {"activations": acts})
    codes = plan.add("codes", f"{scope}/{recipe_name}/codes", _without_boundary_rows(headline_probe.parents["codes"].params),
                     {"sae": sae, "extract": extract})  # fmt: skip
    probe = plan.add("probe", f"{scope}/{recipe_name}/{headline_probe.params['pooling']}/probe",
                     dict(headline_probe.params), {**headline_probe.parents, "codes": codes})  # fmt: skip
    return plan.add("causal", f"llm/{dataset}/causal-allpos-sae", _without_boundary_rows(boundary_causal.params),
                    {**boundary_causal.parents, "sae": sae, "probe": probe, "activations": acts})  # fmt: skip


def _without_boundary_rows(params: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in params.items() if key != BOUNDARY_ROWS}
