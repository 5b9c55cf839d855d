"""Stages that only read arrays or SAE weights import no model library: what every one of their jobs pays first.

Each rule runs its stage in a fresh interpreter, and importing sae-lens (which brings
TransformerLens and transformers) costs 4-7 s of CPU, more than the whole work of a
``codes`` or ``sae_stability`` node. The stages below read SAE checkpoints with
``saes.checkpoint`` (sae-lens' format, read without sae-lens) or only stored arrays and
tables, so neither importing them nor, for the two that read SAE checkpoints on every
job, running them may load ``sae_lens``, ``transformer_lens`` or ``transformers``.
Each check runs in a fresh interpreter, as a Snakemake job does.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from sae_difficulty.pipeline.artifacts import ACTIVATIONS, CODES, EXAMPLES
from sae_difficulty.saes.cache import write_activation_cache, write_training_cache

from .conftest import save_decoder_sae, save_identity_sae

MODEL_LIBRARIES = ("sae_lens", "transformer_lens", "transformers")

#: The stages covered, each with why it needs no model library.
LIGHT_STAGES = {
    "codes": "reads the SAE with saes.checkpoint and encodes the cached activations with torch",
    "sae_stability": "compares decoder rows read with saes.checkpoint (numpy)",
    "sae_quality": "reads the SAE with saes.checkpoint; the backbone's own libraries load inside build, for its modality only",
    "probe": "fits scikit-learn probes on stored activations, codes and labels",
    "selective": "risk-coverage, calibration and cascades on stored scores",
    "ground_truth": "reads the synthetic SAEs' stored decoders with safetensors",
    "synthesis": "tables and figures from stored results",
    "manuscript": "text, tables and figures from stored results",
}

_REPORT = "import json, sys; print(json.dumps(sorted(m for m in {libraries} if m in sys.modules)))"


def _model_libraries_loaded(code: str) -> list[str]:
    """Run ``code`` in a fresh interpreter; the model libraries it left in ``sys.modules``."""
    script = f"{code}\n{_REPORT.format(libraries=MODEL_LIBRARIES)}"
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("stage", sorted(LIGHT_STAGES))
def test_importing_a_data_stage_loads_no_model_library(stage: str) -> None:
    code = f"import sae_difficulty.pipeline.runner, sae_difficulty.stages.{stage}"
    assert _model_libraries_loaded(code) == [], f"{stage}: {LIGHT_STAGES[stage]}"


def test_the_import_check_sees_a_model_library() -> None:
    # the check itself: a module that does import sae-lens is reported
    assert _model_libraries_loaded("import sae_difficulty.saes.training") == list(MODEL_LIBRARIES)


_BUILD = """
import json, sys
from pathlib import Path
from sae_difficulty.pipeline.runner import NodeContext
from sae_difficulty.stages import {stage}
params, parents, out = json.loads(sys.argv[1]), json.loads(sys.argv[2]), Path(sys.argv[3])
out.mkdir(parents=True)
spec = {{"stage": "{stage}", "version": "1", "params": params, "parents": {{}}}}
{stage}.build(NodeContext(spec, {{role: Path(p) for role, p in parents.items()}}, out, {{}}, out.name))
"""


def _build_in_fresh_interpreter(stage: str, params: dict, parents: dict[str, Path], out: Path) -> list[str]:
    script = f"{_BUILD.format(stage=stage)}\n{_REPORT.format(libraries=MODEL_LIBRARIES)}"
    args = [json.dumps(params), json.dumps({role: str(path) for role, path in parents.items()}), str(out)]
    result = subprocess.run([sys.executable, "-c", script, *args], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_codes_and_stability_jobs_run_without_model_libraries(tmp_path: Path) -> None:
    d, n_examples, rows_per_example = 8, 12, 5
    rng = np.random.default_rng(0)
    extract = tmp_path / "extract"
    tokens = rng.normal(size=(n_examples * rows_per_example, d)).astype(np.float32)
    write_activation_cache(extract / ACTIVATIONS, tokens, np.arange(0, tokens.shape[0] + 1, rows_per_example))
    pd.DataFrame({"example_id": np.arange(n_examples)}).to_parquet(extract / EXAMPLES)
    parents = {"sae": save_identity_sae(tmp_path / "sae", d), "extract": extract}  # sae-lens writes the checkpoint
    assert _build_in_fresh_interpreter("codes", {"min_explained_variance": 0.99}, parents, tmp_path / "codes") == []
    assert (tmp_path / "codes" / CODES).is_dir()

    torch.manual_seed(0)
    decoder = rng.normal(size=(2 * d, d))
    parents = {role: save_decoder_sae(tmp_path / role, decoder) for role in ("seed_0", "seed_1")}
    parents["activations"] = tmp_path / "activations"
    write_training_cache(parents["activations"] / ACTIVATIONS, tokens, tokens)
    params = {"n_random": 2, "seed": 0}
    assert _build_in_fresh_interpreter("sae_stability", params, parents, tmp_path / "stability") == []
    assert json.loads((tmp_path / "stability" / "stability.json").read_text())["pwmcc_mean"] == pytest.approx(1.0)
