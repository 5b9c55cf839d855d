"""The concept judge of the steering evaluation: is a continuation code-like?"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

import numpy as np

from sae_difficulty.utils.errors import InputError


class SuccessClassifier(Protocol):
    """What :func:`run_steering` needs from a concept judge."""

    def success(self, texts: Sequence[str]) -> np.ndarray: ...


def chop(texts: Sequence[str], chunk_chars: int) -> list[str]:
    """Consecutive, non-overlapping ``chunk_chars`` pieces of every text (a shorter tail is
    kept when it is at least half a chunk), so the judge is trained on pieces as long as the
    continuations it will judge rather than on whole documents."""
    pieces: list[str] = []
    for text in texts:
        for start in range(0, len(text), chunk_chars):
            piece = text[start : start + chunk_chars]
            if len(piece) >= chunk_chars // 2 and piece.strip():
                pieces.append(piece)
    return pieces


class CodeLikenessClassifier:
    """P(code-like) of a text: char n-gram TF-IDF + logistic regression (scikit-learn).

    :meth:`fit` chops prose and code documents into ``chunk_chars`` pieces (default 96
    characters, about the length of a 24-token continuation of a small byte-level BPE
    model), holds out ``test_fraction`` of them (stratified, seeded), records
    ``heldout_accuracy`` and refuses (InputError) a judge below ``min_accuracy``. Code
    documents are usually far longer than prose ones, so the classes are weighted
    ``balanced`` and the held-out accuracy is the *balanced* accuracy (mean per-class
    recall): always answering "code" must not pass as a judge.
    """

    def __init__(self, chunk_chars: int = 96, test_fraction: float = 0.25, min_accuracy: float = 0.8):
        if chunk_chars < 2 or not 0.0 < test_fraction < 1.0:
            raise InputError(f"CodeLikenessClassifier: chunk_chars={chunk_chars}, test_fraction={test_fraction}; expected >= 2 and in (0, 1)")
        self.chunk_chars = int(chunk_chars)
        self.test_fraction = float(test_fraction)
        self.min_accuracy = float(min_accuracy)
        self.pipeline = None
        self.heldout_accuracy: float | None = None
        self.n_train = 0
        self.n_test = 0

    def fit(self, prose_texts: Sequence[str], code_texts: Sequence[str], seed: int = 0) -> CodeLikenessClassifier:
        """Train on chunks of the two corpora; InputError if held-out accuracy < ``min_accuracy``."""
        from sklearn.feature_extraction.text import TfidfVectorizer
        from sklearn.linear_model import LogisticRegression
        from sklearn.metrics import balanced_accuracy_score
        from sklearn.model_selection import train_test_split
        from sklearn.pipeline import make_pipeline

        prose, code = chop(prose_texts, self.chunk_chars), chop(code_texts, self.chunk_chars)
        minimum = 4
        if len(prose) < minimum or len(code) < minimum:
            raise InputError(
                f"CodeLikenessClassifier.fit: {len(prose)} prose and {len(code)} code chunks of {self.chunk_chars} characters; "
                f"expected at least {minimum} of each"
            )
        texts = prose + code
        labels = np.array([0] * len(prose) + [1] * len(code))
        train_x, test_x, train_y, test_y = train_test_split(
            texts, labels, test_size=self.test_fraction, random_state=seed, stratify=labels
        )
        self.pipeline = make_pipeline(
            TfidfVectorizer(analyzer="char_wb", ngram_range=(1, 3), sublinear_tf=True),
            LogisticRegression(max_iter=2000, class_weight="balanced"),
        )
        self.pipeline.fit(train_x, train_y)
        self.heldout_accuracy = float(balanced_accuracy_score(test_y, self.pipeline.predict(test_x)))
        self.n_train, self.n_test = len(train_x), len(test_x)
        if self.heldout_accuracy < self.min_accuracy:
            raise InputError(
                f"CodeLikenessClassifier: held-out accuracy {self.heldout_accuracy:.3f} < {self.min_accuracy}; it cannot judge steering success"
            )
        return self

    def predict_proba(self, texts: Sequence[str]) -> np.ndarray:
        """Probability that each text is code-like, shape ``[len(texts)]``."""
        if self.pipeline is None:
            raise InputError("CodeLikenessClassifier: call fit(prose_texts, code_texts) before predict_proba")
        if len(texts) == 0:
            return np.zeros(0)
        return self.pipeline.predict_proba(list(texts))[:, 1]

    def success(self, texts: Sequence[str]) -> np.ndarray:
        """Code-like (p > 0.5) per text."""
        return self.predict_proba(texts) > 0.5
