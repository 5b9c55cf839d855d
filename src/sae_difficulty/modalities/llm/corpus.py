"""Demo text corpus and tokenizer for the LLM leg: text that ships with Python.

Prose comes from ``pydoc_data.topics`` (the help() topics of the language reference)
and code from the standard library's own ``.py`` sources, so the offline demo needs no
download. Every document gets a fixed *role* from the sha256 of its key (topic +
paragraph-group index, or the file's path relative to the standard library):

* ``backbone``: the only text the demo backbone and its tokenizer are trained on;
* ``tasks``: prose the demo HellaSwag/SQuAD records are generated from;
* ``sae``: text whose residual activations train the SAEs;
* ``heldout``: text for the backbone's held-out loss and the spliced-loss check.

Roles are a pure function of the key (the shares are constants, not config), so no
config change can ever move a task passage into the backbone's training text, and the
backbones, the tasks and the SAE caches of one config always agree on the split. The
text itself depends on the Python version that runs the workflow; the corpus
fingerprint recorded in each summary says exactly which text was used.
"""

from __future__ import annotations

import functools
import hashlib
import re
import sysconfig
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from sae_difficulty.utils.errors import InputError

#: Upper edges of each role's share of the unit interval (documents hashed uniformly).
ROLE_EDGES: tuple[tuple[str, float], ...] = (
    ("backbone", 0.55),
    ("tasks", 0.85),
    ("sae", 0.95),
    ("heldout", 1.0),
)
ROLES = tuple(name for name, _ in ROLE_EDGES)

EOS_TOKEN = "<|endoftext|>"
PAD_TOKEN = "<|padding|>"

#: Prose paragraphs are grouped into documents of at least this many characters.
MIN_PROSE_DOC_CHARS = 1200
#: Standard-library folders that are test data or vendored packages, not library code.
EXCLUDED_STDLIB_PARTS = frozenset({"test", "tests", "idle_test", "site-packages", "__pycache__"})

_LIST_OR_CODE_LINE = re.compile(r"^\s*(>>>|\.\.\.|[*+-] |\d+\. |\w[\w ]*::=)")


@dataclass(frozen=True)
class Document:
    """One unit of the corpus: ``key`` decides its role, ``kind`` is "prose" or "code"."""

    key: str
    kind: str
    text: str

    @property
    def role(self) -> str:
        return role_of(self.key)


def unit_hash(key: str, salt: str) -> float:
    """A uniform number in [0, 1) from sha256(salt + key): stable across runs and machines."""
    digest = hashlib.sha256(f"{salt}:{key}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2.0**64


def role_of(key: str) -> str:
    """The fixed role of a document key (see the module docstring)."""
    u = unit_hash(key, "sae-difficulty/llm-corpus-role")
    for name, edge in ROLE_EDGES:
        if u < edge:
            return name
    return ROLE_EDGES[-1][0]


def reflow_paragraph(paragraph: str) -> str:
    """Join a hard-wrapped prose paragraph into one line; leave code, grammar and lists as they are.

    pydoc wraps prose at ~70 columns; one line per paragraph is how prose reads in the
    tasks (and in web text), so the backbone sees the same layout it is tested on.
    """
    lines = [line for line in paragraph.split("\n") if line.strip()]
    if not lines:
        return ""
    indents = {len(line) - len(line.lstrip(" ")) for line in lines}
    words = paragraph.split()
    looks_like_prose = (
        len(indents) == 1
        and len(words) >= 8
        and not any(_LIST_OR_CODE_LINE.match(line) for line in lines)
        and sum(ch.isalpha() or ch.isspace() for ch in paragraph) >= 0.85 * len(paragraph)
    )
    if not looks_like_prose:
        return paragraph.rstrip()
    return " ".join(words)


def is_prose_paragraph(paragraph: str, min_words: int = 12) -> bool:
    """True for a reflowed single-line sentence paragraph (the raw material of the tasks)."""
    text = paragraph.strip()
    return (
        "\n" not in text
        and len(text.split()) >= min_words
        and text[-1:] in ".:"
        and sum(ch.isalpha() or ch.isspace() for ch in text) >= 0.85 * len(text)
    )


@functools.lru_cache(maxsize=1)
def python_documents() -> tuple[Document, ...]:
    """All prose and code documents of this Python installation, in a stable order.

    Prose paragraphs that pydoc repeats under several topics are kept once (at their
    first topic in sorted order), so one text cannot land in two roles.
    """
    import pydoc_data.topics

    documents: list[Document] = []
    seen: set[str] = set()  # pydoc repeats whole sections across topics; keep each paragraph once
    for topic in sorted(pydoc_data.topics.topics):
        paragraphs = [reflow_paragraph(p) for p in re.split(r"\n[ \t]*\n", pydoc_data.topics.topics[topic])]
        groups: list[list[str]] = [[]]
        for paragraph in filter(None, paragraphs):
            if paragraph.strip() in seen:
                continue
            seen.add(paragraph.strip())
            if sum(len(p) for p in groups[-1]) >= MIN_PROSE_DOC_CHARS:
                groups.append([])
            groups[-1].append(paragraph)
        for index, group in enumerate(g for g in groups if g):
            documents.append(Document(f"pydoc/{topic}/{index}", "prose", "\n\n".join(group)))

    stdlib = Path(sysconfig.get_paths()["stdlib"])
    for path in sorted(stdlib.rglob("*.py")):
        relative = path.relative_to(stdlib)
        if EXCLUDED_STDLIB_PARTS.intersection(relative.parts):
            continue
        try:
            text = path.read_text(encoding="utf-8")
        except (UnicodeDecodeError, OSError):
            continue
        if text.strip():
            documents.append(Document(f"stdlib/{relative.as_posix()}", "code", text))
    return tuple(documents)


def documents_for(role: str, kinds: Sequence[str] = ("prose", "code")) -> list[Document]:
    """Documents of ``role`` and the given kinds, in a stable order (key-sorted within kind)."""
    if role not in ROLES:
        raise InputError(f"corpus role {role!r} is unknown; expected one of {list(ROLES)}")
    return [doc for doc in python_documents() if doc.kind in kinds and doc.role == role]


def take_budget(documents: Iterable[Document], max_chars: int | None, salt: str) -> list[Document]:
    """A deterministic, topic-diverse subset of ``documents`` of at most ``max_chars`` characters.

    Documents are visited in the order of a salted hash of their key (so a small budget
    samples all topics/modules instead of the alphabetically first ones) and returned in
    key order.
    """
    ordered = sorted(documents, key=lambda doc: unit_hash(doc.key, salt))
    if max_chars is None:
        chosen = ordered
    else:
        chosen, total = [], 0
        for doc in ordered:
            if total + len(doc.text) > max_chars and chosen:
                continue
            chosen.append(doc)
            total += len(doc.text)
            if total >= max_chars:
                break
    return sorted(chosen, key=lambda doc: doc.key)


def backbone_documents(prose_chars: int | None, code_chars: int | None) -> list[Document]:
    """The backbone's training documents within the prose and code character budgets (None: all)."""
    prose = take_budget(documents_for("backbone", ("prose",)), prose_chars, "backbone-prose") if prose_chars != 0 else []
    code = take_budget(documents_for("backbone", ("code",)), code_chars, "backbone-code") if code_chars != 0 else []
    return prose + code


def fingerprint(documents: Iterable[Document]) -> str:
    """sha256 over the keys and texts of ``documents``: which text exactly was used."""
    digest = hashlib.sha256()
    for doc in documents:
        digest.update(doc.key.encode())
        digest.update(b"\0")
        digest.update(doc.text.encode())
        digest.update(b"\0")
    return digest.hexdigest()


def train_tokenizer(texts: Sequence[str], vocab_size: int):
    """Train a byte-level BPE tokenizer (GPT-2/Pythia style) and wrap it for transformers.

    ``<|endoftext|>`` (id 0) is BOS, EOS and UNK as in Pythia, ``<|padding|>`` (id 1)
    pads. Byte-level pre-tokenization means every string round-trips.
    """
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    if vocab_size < 256 + 2:
        raise InputError(f"llm backbone vocab_size={vocab_size} is too small; expected at least 258 (256 bytes + 2 special tokens)")
    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=[EOS_TOKEN, PAD_TOKEN],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tokenizer.train_from_iterator(texts, trainer=trainer)
    return PreTrainedTokenizerFast(
        tokenizer_object=tokenizer,
        bos_token=EOS_TOKEN,
        eos_token=EOS_TOKEN,
        unk_token=EOS_TOKEN,
        pad_token=PAD_TOKEN,
    )
