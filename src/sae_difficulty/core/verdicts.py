"""The Δ(P3 − P2) verdict with an equivalence margin (a TOST-style reading of the bootstrap CI).

A CI that contains 0 is absence of evidence, not evidence of absence. With a margin m
(AUROC units) chosen in advance, the paired-bootstrap CIs of Δ say one of four things,
checked in this order:

* ``"SAE adds signal"`` — the 95 % CI lies above 0;
* ``"SAE worse"`` — the 95 % CI lies below 0;
* ``"equivalent within ±m"`` — the 90 % CI lies inside (−m, +m) (two one-sided tests at
  5 %, Schuirmann 1987);
* ``"inconclusive"`` — none of these: the data cannot tell.
"""

from __future__ import annotations

import math

from sae_difficulty.utils.errors import InputError

ADDS_SIGNAL = "SAE adds signal"
WORSE = "SAE worse"
INCONCLUSIVE = "inconclusive"
#: Default margin in AUROC units (schema: synthesis.equivalence_margin).
DEFAULT_MARGIN = 0.02


def equivalent_label(margin: float) -> str:
    """The verdict word for equivalence, with the margin written out."""
    return f"equivalent within ±{margin:g}"


def verdict_words(margin: float) -> tuple[str, str, str, str]:
    """The four verdicts the summary may use, for a margin."""
    return (ADDS_SIGNAL, WORSE, equivalent_label(margin), INCONCLUSIVE)


def delta_verdict(ci95: tuple[float, float], ci90: tuple[float, float], margin: float) -> str:
    """The verdict on Δ from its 95 % and 90 % paired-bootstrap CIs and the equivalence margin."""
    if not (isinstance(margin, (int, float)) and math.isfinite(margin) and margin > 0):
        raise InputError(f"synthesis.equivalence_margin: expected a positive number (AUROC units), got {margin!r}")
    low95, high95 = (float(v) for v in ci95)
    low90, high90 = (float(v) for v in ci90)
    if not all(math.isfinite(v) for v in (low95, high95, low90, high90)):
        return INCONCLUSIVE
    if low95 > 0.0:
        return ADDS_SIGNAL
    if high95 < 0.0:
        return WORSE
    if -margin < low90 and high90 < margin:
        return equivalent_label(margin)
    return INCONCLUSIVE
