"""Demo GPT-NeoX backbone (training) and the one loader both profiles use.

Training: a Pythia-architecture model (rotary on a fraction of each head, parallel
attention + MLP, LayerNorm, GELU, untied embeddings) built with ``transformers`` and
trained on the ``backbone`` role of the Python-shipped corpus with a byte-level BPE
tokenizer trained on the same text; both are saved with ``save_pretrained``.

Loading: :func:`load_backbone` returns a :class:`Backbone` holding a TransformerLens
``HookedTransformer``. A hub name goes through ``HookedTransformer.from_pretrained_no_processing``;
a local Hugging Face directory of a supported family (GPT-2, Pythia/GPT-NeoX, Llama, Qwen2,
Gemma-2; :mod:`families`) gets its TransformerLens config from its own ``config.json`` and
its weights through TransformerLens's per-architecture conversion, because
``HookedTransformer.from_pretrained`` only accepts official names and TransformerLens's
local-path config route fails for most families. Both routes load the weights *unprocessed*
(no LayerNorm folding, no centering): the residual stream is then exactly the Hugging
Face model's hidden state, and the two routes give the same activations for the same
weights.
"""

from __future__ import annotations

import dataclasses
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from sae_difficulty.modalities.llm import corpus as llm_corpus
from sae_difficulty.modalities.llm import families as llm_families
from sae_difficulty.utils.errors import InputError
from sae_difficulty.utils.numerics import seed_everything

DEFAULT_CODE_CHARS = 600_000


@dataclass(frozen=True)
class BackboneParams:
    """Config of one demo backbone (``llm.backbones.<size>``); every key has a default.

    ``hub`` set (paper profile) means: nothing is trained, the loader reads that name.
    Shape: ``d_model``, ``n_layers``, ``n_heads``, ``d_mlp``, ``context_length`` (training
    window = max positions), ``vocab_size`` (BPE), ``rotary_pct`` (share of each head's
    dimensions that are rotated; Pythia uses 0.25). Optimization: ``train_steps``,
    ``batch_size`` (windows per step), ``lr`` (AdamW, cosine decay after
    ``warmup_steps`` of linear warm-up), ``weight_decay``, ``grad_clip`` (max grad norm).
    ``repeat_fraction``: share of each batch's windows in which a random span of the
    window's own text (``REPEAT_SPAN`` tokens) is repeated later in the window (see
    :func:`repeat_spans`); 0 trains on plain text only.
    ``heldout_windows``: windows of the ``heldout`` corpus role for the held-out loss.
    ``corpus``: ``prose_chars`` (null = all backbone-role prose, about 200k characters)
    and ``code_chars`` (default ``DEFAULT_CODE_CHARS``) character budgets of the
    backbone's training text.
    """

    hub: str | None = None
    d_model: int = 64
    n_layers: int = 2
    n_heads: int = 2
    d_mlp: int = 256
    context_length: int = 128
    vocab_size: int = 2048
    rotary_pct: float = 0.25
    train_steps: int = 1500
    batch_size: int = 16
    lr: float = 2e-3
    weight_decay: float = 0.01
    warmup_steps: int = 50
    grad_clip: float = 1.0
    repeat_fraction: float = 0.0
    heldout_windows: int = 64
    corpus: dict[str, Any] = dataclasses.field(default_factory=dict)

    @classmethod
    def from_dict(cls, params: dict[str, Any] | None) -> BackboneParams:
        params = dict(params or {})
        known = {field.name for field in dataclasses.fields(cls)}
        unknown = sorted(set(params) - known)
        if unknown:
            raise InputError(f"llm backbone params: unknown key(s) {unknown}; expected some of {sorted(known)}")
        made = cls(**params)
        if not 0.0 <= made.repeat_fraction <= 1.0:
            raise InputError(f"llm backbone params: repeat_fraction={made.repeat_fraction} must be in [0, 1]")
        if made.d_model % made.n_heads:
            raise InputError(f"llm backbone params: d_model={made.d_model} must be divisible by n_heads={made.n_heads}")
        unknown_corpus = sorted(set(made.corpus) - {"prose_chars", "code_chars"})
        if unknown_corpus:
            raise InputError(f"llm backbone params: unknown corpus key(s) {unknown_corpus}; expected prose_chars, code_chars")
        return made


@dataclass
class Backbone:
    """A loaded LM: the TransformerLens model, its tokenizer and where it came from.

    ``bos_id`` is prepended to every prompt and window by the project itself, in every
    family (the tokenizer's BOS; Pythia, GPT-2 and the demo model use ``<|endoftext|>``,
    which also separates documents; Qwen2 has no BOS token and gets its EOS). Position 0
    is never extracted or patched (the SAE activation cache keeps positions 1..), so SAE
    quality numbers exclude BOS as published SAE evaluations do (Gemma-2's residual at
    BOS is far larger than at any other position). ``default_prepend_bos`` is
    TransformerLens's per-family choice for string inputs (False for Pythia/GPT-NeoX and
    Qwen2, True for GPT-2, Llama and Gemma-2), e.g. to compare with a published SAE's
    ``prepend_bos``.
    """

    model: Any  # transformer_lens.HookedTransformer
    tokenizer: Any  # transformers.PreTrainedTokenizerBase
    source: str
    device: str

    @property
    def bos_id(self) -> int:
        token_id = self.tokenizer.bos_token_id
        return int(token_id if token_id is not None else self.tokenizer.eos_token_id)

    @property
    def default_prepend_bos(self) -> bool:
        return bool(self.model.cfg.default_prepend_bos)

    @property
    def n_layers(self) -> int:
        return int(self.model.cfg.n_layers)

    @property
    def d_model(self) -> int:
        return int(self.model.cfg.d_model)

    @property
    def n_ctx(self) -> int:
        return int(self.model.cfg.n_ctx)

    def encode(self, text: str) -> list[int]:
        """Token ids of ``text`` without special tokens."""
        return list(self.tokenizer(text, add_special_tokens=False)["input_ids"])


def is_hub_backbone(params: dict[str, Any] | None) -> bool:
    """True when the backbone config names a hub model (paper profile): no training then."""
    return bool((params or {}).get("hub"))


def pick_device(device: str | None = None) -> str:
    """``device`` if given, else the best available: cuda, then mps, then cpu."""
    if device:
        return device
    if torch.cuda.is_available():
        return "cuda"
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        return "mps"
    return "cpu"


def gpt_neox_config(params: BackboneParams, vocab_size: int):
    """The ``GPTNeoXConfig`` of a demo backbone (Pythia choices: parallel residual, partial rotary)."""
    from transformers import GPTNeoXConfig

    return GPTNeoXConfig(
        vocab_size=vocab_size,
        hidden_size=params.d_model,
        num_hidden_layers=params.n_layers,
        num_attention_heads=params.n_heads,
        intermediate_size=params.d_mlp,
        max_position_embeddings=params.context_length,
        rope_parameters={"rope_type": "default", "rope_theta": 10000.0, "partial_rotary_factor": params.rotary_pct},
        use_parallel_residual=True,
        hidden_act="gelu",
        attention_dropout=0.0,
        hidden_dropout=0.0,
        tie_word_embeddings=False,
        bos_token_id=0,
        eos_token_id=0,
        architectures=["GPTNeoXForCausalLM"],
    )


def token_stream(tokenizer, documents: list[llm_corpus.Document]) -> torch.Tensor:
    """All documents tokenized and joined by ``<|endoftext|>`` (ids as a 1-D int64 tensor)."""
    eos = tokenizer.eos_token_id
    pieces: list[int] = []
    for encoded in tokenizer([doc.text for doc in documents], add_special_tokens=False)["input_ids"]:
        pieces.extend(encoded)
        pieces.append(eos)
    return torch.tensor(pieces, dtype=torch.long)


def windows_at(stream: torch.Tensor, starts: torch.Tensor, context_length: int, bos_id: int) -> torch.Tensor:
    """Rows ``[bos] + stream[s : s + context_length - 1]`` for every start ``s``."""
    body = stream[starts[:, None] + torch.arange(context_length - 1)[None, :]]
    return torch.cat([torch.full((len(starts), 1), bos_id, dtype=torch.long), body], dim=1)


#: Lengths (tokens, inclusive) of the span a repeat window copies: a few words to a sentence.
REPEAT_SPAN = (4, 24)


def repeat_spans(windows: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Each BOS-led window with a random span of its own text repeated later in it.

    Why: the demo tasks reward looking back at the prompt (the SQuAD-demo answer follows
    the cue's earlier occurrence in the context; the right HellaSwag ending shares more
    of the context's words than a distractor does: word overlap alone picks it 58 % of
    the time). Web-scale text repeats itself (quotes, names, boilerplate); a few hundred
    thousand tokens of Python docs and code much less. A span of ``REPEAT_SPAN`` tokens at
    a random position is inserted again after a random gap; the window keeps its length
    (its tail is cut) and its BOS. Measured on the demo's large backbone (700 steps, one
    seed): half the windows repeating lowered the SQuAD-demo error from 0.843 to 0.830
    and HellaSwag's from 0.657 to 0.650; no copy of random tokens emerged at that budget.
    """
    rows = windows.clone()
    body = rows.shape[1] - 1
    low, high = REPEAT_SPAN
    for row in rows:
        length = int(torch.randint(low, min(high, body // 3) + 1, (1,), generator=generator))
        first = int(torch.randint(0, body - 2 * length + 1, (1,), generator=generator))
        insert_at = first + length + int(torch.randint(0, body - 2 * length - first + 1, (1,), generator=generator))
        text = row[1:].clone()
        row[1:] = torch.cat([text[:insert_at], text[first : first + length], text[insert_at:]])[:body]
    return rows


def fixed_windows(stream: torch.Tensor, n_windows: int, context_length: int, bos_id: int) -> torch.Tensor:
    """Up to ``n_windows`` consecutive, non-overlapping BOS-led windows from the start of ``stream``."""
    step = context_length - 1
    available = (len(stream) - 1) // step
    if available < 1:
        raise InputError(f"held-out text has {len(stream)} tokens; need at least context_length={context_length}")
    starts = torch.arange(min(n_windows, available)) * step
    return windows_at(stream, starts, context_length, bos_id)


@torch.no_grad()
def mean_next_token_loss(model, windows: torch.Tensor, batch_size: int, device: str) -> float:
    """Mean next-token cross-entropy (nats) of a Hugging Face causal LM over ``windows``."""
    model.eval()
    total, count = 0.0, 0
    for start in range(0, len(windows), batch_size):
        batch = windows[start : start + batch_size].to(device)
        logits = model(input_ids=batch).logits[:, :-1].float()
        losses = torch.nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), batch[:, 1:].reshape(-1), reduction="sum")
        total += float(losses)
        count += batch[:, 1:].numel()
    return total / count


def train_backbone(params: dict[str, Any], out_dir: str | Path, seed: int) -> dict[str, Any]:
    """Train a demo GPT-NeoX backbone and save model + tokenizer in Hugging Face format.

    A plain AdamW loop (cosine schedule with linear warm-up from ``transformers``) rather
    than ``transformers.Trainer``: it is deterministic for a seed on CPU, streams progress
    to stderr through tqdm and needs no accelerate/logging machinery for a model this small.
    Returns ``n_params``, ``train_tokens``, ``heldout_loss`` (nats/token, ``heldout``
    corpus role), the loss curve endpoints and the corpus fingerprint.
    """
    from transformers import GPTNeoXForCausalLM, get_cosine_schedule_with_warmup

    config = BackboneParams.from_dict(params)
    if config.hub:
        raise InputError(f"llm backbone has hub={config.hub!r}: nothing to train (check is_hub_backbone first)")
    out_dir = Path(out_dir)
    seed_everything(seed)
    device = pick_device()

    documents = llm_corpus.backbone_documents(config.corpus.get("prose_chars"), config.corpus.get("code_chars", DEFAULT_CODE_CHARS))
    tokenizer = llm_corpus.train_tokenizer([doc.text for doc in documents], config.vocab_size)
    stream = token_stream(tokenizer, documents)
    heldout_docs = llm_corpus.documents_for("heldout")
    heldout = fixed_windows(token_stream(tokenizer, heldout_docs), config.heldout_windows, config.context_length, tokenizer.bos_token_id)
    if len(stream) <= config.context_length:
        raise InputError(f"llm corpus budget gives {len(stream)} training tokens; need more than context_length={config.context_length}")

    model = GPTNeoXForCausalLM(gpt_neox_config(config, len(tokenizer))).to(device)
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=config.weight_decay, betas=(0.9, 0.95))
    schedule = get_cosine_schedule_with_warmup(optimizer, config.warmup_steps, config.train_steps)
    generator = torch.Generator().manual_seed(seed)
    repeat_generator = torch.Generator().manual_seed(seed + 1)  # separate, so repeat_fraction=0 draws as before
    n_repeat = round(config.repeat_fraction * config.batch_size)
    max_start = len(stream) - (config.context_length - 1)

    losses: list[float] = []
    model.train()
    progress = tqdm(range(config.train_steps), desc="train backbone", file=sys.stderr, mininterval=5.0)
    for _ in progress:
        starts = torch.randint(0, max_start, (config.batch_size,), generator=generator)
        batch = windows_at(stream, starts, config.context_length, tokenizer.bos_token_id)
        if n_repeat:
            batch[:n_repeat] = repeat_spans(batch[:n_repeat], repeat_generator)
        batch = batch.to(device)
        loss = model(input_ids=batch, labels=batch).loss
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip)
        optimizer.step()
        schedule.step()
        losses.append(loss.item())
        progress.set_postfix(loss=f"{losses[-1]:.3f}", refresh=False)

    heldout_loss = mean_next_token_loss(model, heldout, config.batch_size, device)
    print(f"train backbone: final train loss {np.mean(losses[-10:]):.4f}, held-out loss {heldout_loss:.4f} nats/token", file=sys.stderr)
    out_dir.mkdir(parents=True, exist_ok=True)
    model.cpu().save_pretrained(out_dir)
    tokenizer.save_pretrained(out_dir)
    tail = max(1, min(10, len(losses)))
    return {
        "n_params": int(sum(p.numel() for p in model.parameters())),
        "train_tokens": int(config.train_steps * config.batch_size * config.context_length),
        "corpus_tokens": int(len(stream)),
        "corpus_documents": len(documents),
        "corpus_sha256": llm_corpus.fingerprint(documents),
        "python_version": sys.version.split()[0],
        "heldout_loss": heldout_loss,
        "heldout_tokens": int(heldout[:, 1:].numel()),
        "train_loss_first": losses[0],
        "train_loss_last": float(np.mean(losses[-tail:])),
        "vocab_size": len(tokenizer),
        "device": device,
    }


def load_backbone(source: str | Path, device: str | None = None) -> Backbone:
    """Load a language model of a supported family as a TransformerLens ``HookedTransformer``.

    ``source`` is either a local directory with a Hugging Face ``config.json`` (demo
    model, or a user's own checkpoint) or a hub name such as ``EleutherAI/pythia-410m``
    (paper profile, needs the network once). ``device`` defaults to cuda > mps > cpu.
    """
    from transformer_lens import HookedTransformer

    device = pick_device(device)
    path = Path(source)
    if path.is_dir():
        return _load_local(path, device)
    if path.exists() or str(source).startswith((".", "/")) or str(source).count("/") != 1:
        raise InputError(f"backbone source {str(source)!r} is neither a local model directory nor a hub name like 'EleutherAI/pythia-410m'")
    model = HookedTransformer.from_pretrained_no_processing(str(source), device=device)
    model.eval()
    return Backbone(model=model, tokenizer=model.tokenizer, source=str(source), device=device)


def _load_local(path: Path, device: str) -> Backbone:
    """A local checkpoint of a supported family (:mod:`families`) as an unprocessed ``HookedTransformer``.

    The config comes from the checkpoint's own ``config.json`` (:func:`families.hooked_config`),
    the weights through TransformerLens's per-architecture conversion of the loaded Hugging
    Face model; nothing touches the network.
    """
    from transformer_lens import HookedTransformer
    from transformer_lens.loading_from_pretrained import get_pretrained_state_dict
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    config_file = path / "config.json"
    if not config_file.exists():
        raise InputError(f"backbone directory {path} has no config.json; expected a Hugging Face model saved with save_pretrained")
    hf_config = AutoConfig.from_pretrained(path)
    family = llm_families.family_of(hf_config, path)
    hf_model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32)
    hf_model.eval()
    tokenizer = AutoTokenizer.from_pretrained(path)

    cfg = llm_families.hooked_config(hf_config, family, path, device, torch.float32)
    model = HookedTransformer(cfg, tokenizer=tokenizer, move_to_device=False)
    model.load_and_process_state_dict(
        get_pretrained_state_dict(str(path), cfg, hf_model=hf_model, dtype=torch.float32),
        fold_ln=False,
        center_writing_weights=False,
        center_unembed=False,
        fold_value_biases=False,
        refactor_factored_attn_matrices=False,
    )
    model.to(device)
    model.eval()
    return Backbone(model=model, tokenizer=tokenizer, source=str(path), device=device)


def check_layer(backbone: Backbone, layer: int) -> str:
    """The hook name of ``layer``'s residual stream; a one-line error when out of range."""
    if not isinstance(layer, (int, np.integer)) or isinstance(layer, bool) or not 0 <= int(layer) < backbone.n_layers:
        raise InputError(
            f"llm layer {layer!r} is out of range for {backbone.source}: it has {backbone.n_layers} blocks (valid 0..{backbone.n_layers - 1})"
        )
    return f"blocks.{int(layer)}.hook_resid_post"
