"""Stage `eval_transcoder`: an SAE and a skip-transcoder on one MLP, same recipe and token budget."""

from __future__ import annotations

from sae_difficulty.evals import transcoder
from sae_difficulty.modalities import load_backbone
from sae_difficulty.modalities.llm.domains import windows_for_rows
from sae_difficulty.modalities.llm.patching import text_windows
from sae_difficulty.pipeline.runner import NodeContext
from sae_difficulty.stages.evals_common import write_evaluation
from sae_difficulty.utils.errors import InputError

CONFIG_KEYS = ("layer", "expansion", "l1_coefficient", "lr", "training_tokens", "batch_size", "seed", "n_boot",
               "splice_sequences", "context_length")  # fmt: skip


def _windows(backbone, role: str, rows: int, context_length: int, seed: int):
    windows = text_windows(backbone, role, context_length, seed)
    needed = windows_for_rows(rows, context_length)
    if needed > len(windows):
        raise InputError(f"eval_transcoder: {rows} {role} rows need {needed} windows; the corpus gives {len(windows)}")
    return windows[:needed]


def build(ctx: NodeContext) -> None:
    params = ctx.params
    config = transcoder.TranscoderComparisonConfig.from_dict({key: params[key] for key in CONFIG_KEYS})
    _, backbone = load_backbone(ctx.parent("backbone"))
    context_length = params["context_length"]
    train_in, train_out = transcoder.mlp_io(
        backbone, config.layer, _windows(backbone, "sae", params["training_tokens"], context_length, config.seed), 32
    )
    heldout_windows = _windows(backbone, "heldout", params["heldout_tokens"], context_length, config.seed)
    held_in, held_out = transcoder.mlp_io(backbone, config.layer, heldout_windows, 32)
    rows = params["heldout_tokens"]
    sae, skip_transcoder, training = transcoder.train_pair(train_in, train_out, config)
    result = transcoder.evaluate_pair(
        sae, skip_transcoder, held_in[:rows], held_out[:rows], backbone, heldout_windows[: config.splice_sequences], config
    )
    transcoder.save_pair(sae, skip_transcoder, ctx.out / "models")
    write_evaluation(ctx.out, "transcoder", result, {"training": training})
