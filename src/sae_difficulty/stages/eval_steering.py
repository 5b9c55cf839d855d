"""Stage `eval_steering`: steer prose prompts towards code with an SAE feature vs a diff-of-means direction.

Directions come from the domain caches' training rows: diff-of-means = mean code
residual − mean prose residual; the SAE direction is the decoder row of the study's
primary SAE feature whose mean activation rises most from prose to code. The judge is
a character n-gram classifier fit on the corpus role ``tasks`` (text no SAE and no
backbone trained on); candidate prompts are the openings of held-out prose documents.
"""

from __future__ import annotations

import numpy as np

from sae_difficulty.evals import steering
from sae_difficulty.modalities import load_backbone
from sae_difficulty.modalities.llm.domains import domain_documents, read_domain_cache
from sae_difficulty.pipeline.artifacts import ACTIVATIONS, SAE_DIR
from sae_difficulty.pipeline.runner import NodeContext
from sae_difficulty.saes.cache import iter_row_blocks
from sae_difficulty.saes.encoding import decoder_directions, encode_rows
from sae_difficulty.stages.evals_common import load_checked_sae, write_evaluation

CONFIG_KEYS = ("layer", "coefficients", "n_new_tokens", "samples_per_prompt", "max_baseline_success", "n_prompts",
               "fluency_budget", "n_boot", "seed")  # fmt: skip
PROMPT_WORDS = 12
PROMPTS_PER_DOCUMENT = 6
DIRECTION_ROWS = 8192


def mean_and_norm(rows) -> tuple[np.ndarray, float]:
    """Mean row and mean row norm of a (zarr) array, streamed."""
    total, norms, count = None, 0.0, 0
    for block in iter_row_blocks(rows, 4096):
        block = block.astype(np.float64)
        total = block.sum(axis=0) if total is None else total + block.sum(axis=0)
        norms += float(np.linalg.norm(block, axis=1).sum())
        count += len(block)
    return total / count, norms / count


def prose_prompts(n: int) -> list[str]:
    """``n`` candidate prompts: consecutive ``PROMPT_WORDS``-word pieces of held-out prose,
    at most ``PROMPTS_PER_DOCUMENT`` per document, taken round-robin over documents."""
    pieces = []
    for document in domain_documents("prose", "heldout"):
        words = document.text.split()
        starts = range(0, len(words) - PROMPT_WORDS + 1, 2 * PROMPT_WORDS)
        pieces.append([" ".join(words[s : s + PROMPT_WORDS]) for s in starts][:PROMPTS_PER_DOCUMENT])
    prompts = [doc[i] for i in range(PROMPTS_PER_DOCUMENT) for doc in pieces if i < len(doc)]
    return prompts[:n]


def build(ctx: NodeContext) -> None:
    params = ctx.params
    config = steering.SteeringConfig.from_dict({key: params[key] for key in CONFIG_KEYS if key in params} | {
        "coefficients": tuple(params["coefficients"])})  # fmt: skip
    trains = {domain: read_domain_cache(ctx.parent(f"acts_{domain}") / ACTIVATIONS)[0] for domain in ("prose", "code")}
    (prose_mean, prose_norm), (code_mean, code_norm) = mean_and_norm(trains["prose"]), mean_and_norm(trains["code"])
    diff_of_means = code_mean - prose_mean
    sample = {domain: np.asarray(rows[:DIRECTION_ROWS]) for domain, rows in trains.items()}
    sae, check = load_checked_sae(ctx.parent("sae") / SAE_DIR, sample["code"], params["encode_fidelity"])
    rise = encode_rows(sae, sample["code"]).mean(axis=0) - encode_rows(sae, sample["prose"]).mean(axis=0)
    feature = int(np.argmax(rise))
    directions = {
        "sae": decoder_directions(sae)[feature],
        "diff_of_means": diff_of_means,
    }
    directions = {name: vector / np.linalg.norm(vector) for name, vector in directions.items()}
    classifier = steering.CodeLikenessClassifier().fit(
        [d.text for d in domain_documents("prose", "tasks")], [d.text for d in domain_documents("code", "tasks")], params["seed"]
    )
    _, backbone = load_backbone(ctx.parent("backbone"))
    result = steering.run_steering(
        backbone, prose_prompts(params["n_candidate_prompts"]), directions, (prose_norm + code_norm) / 2, classifier, config
    )
    checks = {"sae": check, "sae_feature": feature, "sae_feature_rise": float(rise[feature]),
              "cosine_sae_vs_diff_of_means": float(directions["sae"] @ directions["diff_of_means"])}  # fmt: skip
    write_evaluation(ctx.out, "steering", result, checks)
