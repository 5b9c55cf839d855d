"""The one path by which text and numbers enter generated LaTeX.

Everything the workflow writes into ``.tex`` files (config and dataset names, paths,
node ids, verdict prose, units, table cells) goes through :func:`escape` or
:func:`number`, so a config named ``my_run 100% & more`` or a NaN AUROC still gives
a file that compiles. Tables are rendered here too, with a note under each table that
names the store node of every number in it.
"""

from __future__ import annotations

import math
import unicodedata
from collections.abc import Iterable, Sequence
from typing import Any

# LaTeX's ten special characters (and <, >, | which the default text font lacks), then the
# symbols beyond Latin-1 the reports use; Latin-1 characters (±, ×, ·, ², accents) pass through
# and inputenc's utf8 typesets them.
_SPECIAL = {
    "\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_",
    "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}",
    "<": r"\textless{}", ">": r"\textgreater{}", "|": r"\textbar{}",
}  # fmt: skip
_SYMBOLS = {
    "−": r"\ensuremath{-}", "→": r"\ensuremath{\rightarrow}", "←": r"\ensuremath{\leftarrow}",
    "Δ": r"\ensuremath{\Delta}", "≥": r"\ensuremath{\geq}", "≤": r"\ensuremath{\leq}", "≈": r"\ensuremath{\approx}",
    "α": r"\ensuremath{\alpha}", "β": r"\ensuremath{\beta}", "λ": r"\ensuremath{\lambda}", "μ": r"\ensuremath{\mu}",
    "σ": r"\ensuremath{\sigma}", "ρ": r"\ensuremath{\rho}", "∞": r"\ensuremath{\infty}",
    "—": "---", "–": "--", "…": r"\ldots{}", "“": "``", "”": "''", "‘": "`", "’": "'", "\u00a0": "~",
}  # fmt: skip


def escape(text: Any) -> str:
    """``text`` (any object, via ``str``) as LaTeX that prints it literally.

    Characters outside Latin-1 that have no mapping are written as their Unicode name
    in brackets rather than passed through (pdflatex would stop on them).
    """
    out = []
    for ch in str(text):
        if ch in _SPECIAL:
            out.append(_SPECIAL[ch])
        elif ch in _SYMBOLS:
            out.append(_SYMBOLS[ch])
        elif ch == "\n" or ch == "\t":
            out.append(" ")
        elif ord(ch) < 32:
            continue
        elif ord(ch) > 255:
            out.append(f"[{escape(unicodedata.name(ch, f'U+{ord(ch):04X}').lower())}]")
        else:
            out.append(ch)
    return "".join(out)


def breakable(text: Any) -> str:
    """:func:`escape`, with line breaks allowed after underscores and slashes (identifiers in narrow table cells)."""
    return escape(text).replace(r"\_", r"\_\allowbreak{}").replace("/", r"/\allowbreak{}")


def is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def number(value: Any, digits: int = 3, signed: bool = False) -> str:
    """A number as LaTeX text: fixed ``digits``; NaN, ±infinity and a missing value as words."""
    if value is None:
        return "n/a"
    if not is_number(value):
        return escape(value)
    if isinstance(value, float) and math.isnan(value):
        return "NaN"
    if isinstance(value, float) and math.isinf(value):
        return ("plus " if signed else "") + "infinity" if value > 0 else "minus infinity"
    if isinstance(value, int) and not isinstance(value, bool):
        return f"{value:+d}" if signed else f"{value:d}"
    text = f"{value:+.{digits}f}" if signed else f"{value:.{digits}f}"
    return text.replace("-", r"\ensuremath{-}")


def interval(low: Any, high: Any, digits: int = 3, signed: bool = False) -> str:
    return f"[{number(low, digits, signed)}, {number(high, digits, signed)}]"


def count(value: float) -> str:
    """A large count in words-and-digits form (``1.2 million``, ``35{,}000``)."""
    if not is_number(value) or not math.isfinite(value):
        return number(value)
    if value >= 1e9:
        return f"{value / 1e9:.1f} billion"
    if value >= 1e6:
        return f"{value / 1e6:.1f} million"
    return f"{round(value):,}".replace(",", "{,}")


def texttt(text: Any) -> str:
    """Typewriter text; the typewriter font has its own ``<``, ``>`` and ``|`` glyphs (the text
    commands would borrow them from a math font it lacks)."""
    tex = escape(text)
    for literal in "<>|":
        tex = tex.replace(_SPECIAL[literal], literal)
    return rf"\texttt{{{tex}}}"


class Sources:
    """Store nodes numbered in order of first use: ``S1``, ``S2``, ... (deterministic).

    Prose marks a number with :meth:`mark` (a superscript linking to the provenance list);
    tables list their own nodes in a note (:func:`table`).
    """

    def __init__(self) -> None:
        self.numbers: dict[tuple[str, str], int] = {}

    def number_of(self, stage: str, node_id: str) -> int:
        key = (str(stage), str(node_id))
        if key not in self.numbers:
            self.numbers[key] = len(self.numbers) + 1
        return self.numbers[key]

    def mark(self, stage: str, node_id: str) -> str:
        return rf"\nodesource{{{self.number_of(stage, node_id)}}}"

    def provenance(self) -> str:
        """The list every mark links to: stage, node id and directory of each source."""
        lines = [r"\begin{description}\small"]
        for (stage, node_id), n in self.numbers.items():
            lines.append(rf"\item[S{n}]\phantomsection\label{{node:{n}}} {texttt(stage)} node {texttt(node_id)} "
                         rf"({texttt(f'<store>/{stage}/{node_id}/')}, with \texttt{{spec.json}} and \texttt{{manifest.json}})")  # fmt: skip
        lines.append(r"\end{description}")
        return "\n".join(lines) if self.numbers else ""


def table(header: Sequence[str], rows: Iterable[Sequence[str]], caption: str, label: str,
          nodes: Sequence[tuple[str, str]] = (), note: str = "", widths: Sequence[str] | None = None) -> str:  # fmt: skip
    """A booktabs table float (caption on top, shrunk to the text width if wider). ``header`` is plain text (escaped here); ``rows`` are LaTeX
    already (build cells with :func:`escape` / :func:`number`); ``nodes`` are the
    (stage, node id) pairs the cells came from, named in the table note."""
    spec = "".join(rf">{{\raggedright\arraybackslash}}p{{{w}}}" for w in widths) if widths else "l" * len(header)
    lines = [r"\begin{table}[tbp]", r"\centering", rf"\caption{{{escape(caption)}}}", rf"\label{{{label}}}", r"\scriptsize",
             r"\begin{adjustbox}{max width=\linewidth}", rf"\begin{{tabular}}{{{spec}}}", r"\toprule",
             " & ".join(rf"\textbf{{{escape(h)}}}" for h in header) + r" \\", r"\midrule"]  # fmt: skip
    lines += [" & ".join(row) + r" \\" for row in rows]
    lines += [r"\bottomrule", r"\end{tabular}", r"\end{adjustbox}"]
    notes = ([note] if note else []) + ([node_note(nodes)] if nodes else [])
    if notes:
        lines.append(rf"\par\smallskip\parbox{{\linewidth}}{{\scriptsize {' '.join(notes)}}}")
    lines += [r"\end{table}", ""]
    return "\n".join(lines)


def node_note(nodes: Sequence[tuple[str, str]]) -> str:
    """``Store nodes: probe \\texttt{abc...}, ...`` for a table note (deduplicated, in order)."""
    seen = list(dict.fromkeys((str(s), str(n)) for s, n in nodes))
    return f"Store nodes ({texttt('<store>/<stage>/<id>/')}): " + "; ".join(f"{escape(s)} {texttt(n)}" for s, n in seen) + "."


def frame_cell(value: Any) -> str:
    """One table cell from a plain value: numbers formatted, text escaped, missing as a dash."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "--" if value is None else "NaN"
    return number(value) if isinstance(value, float) else escape(value)
