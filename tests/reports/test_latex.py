"""The one escaping path: any text prints literally, any number (NaN, ±inf) as a word."""

from __future__ import annotations

import math
import re

import pytest

from sae_difficulty.reports import latex

SPECIALS = "\\&%$#_{}~^"


def unescaped_specials(tex: str) -> list[str]:
    """Characters of ``SPECIALS`` in ``tex`` that are neither a command's own syntax nor escaped."""
    stripped = re.sub(r"\\(textbackslash|textasciitilde|textasciicircum|textless|textgreater|textbar|ensuremath)\{\}", "", tex)
    stripped = re.sub(r"\\ensuremath\{[^{}]*\}", "", stripped)
    stripped = re.sub(r"\\[&%$#_{}]", "", stripped)
    return [ch for ch in stripped if ch in SPECIALS]


@pytest.mark.parametrize("text", ["my_run 100% & more", "a\\b {c} #1 $5 ~x^2", "Δ(P3−P2) → ±0.02 × 4", "tab\there"])
def test_escape_leaves_no_special_character_bare(text):
    assert unescaped_specials(latex.escape(text)) == []


def test_escape_writes_each_special_as_its_literal_command():
    assert latex.escape("my_run 100% & more") == r"my\_run 100\% \& more"
    assert latex.escape("a\\b") == r"a\textbackslash{}b"
    assert latex.escape("Δ") == r"\ensuremath{\Delta}"


def test_characters_pdflatex_cannot_typeset_become_their_names():
    assert latex.escape("数") == "[cjk unified ideograph-6570]"
    assert latex.escape("é") == "é"  # Latin-1 passes (inputenc utf8)


def test_numbers_nan_and_infinities_are_words():
    assert latex.number(float("nan")) == "NaN"
    assert latex.number(math.inf) == "infinity"
    assert latex.number(-math.inf) == "minus infinity"
    assert latex.number(None) == "n/a"
    assert latex.number(0.12345) == "0.123"
    assert latex.number(-0.5, signed=True) == r"\ensuremath{-}0.500"
    assert latex.number(0.5, signed=True) == "+0.500"
    assert latex.number(7) == "7"
    assert latex.interval(float("nan"), 0.9) == "[NaN, 0.900]"


def test_counts_read_as_words():
    assert latex.count(410e6) == "410.0 million"
    assert latex.count(2.8e9) == "2.8 billion"
    assert latex.count(35000) == "35{,}000"


def test_table_names_every_node_in_its_note_and_escapes_cells():
    records = [{"name": "my_run", "ev": float("nan"), "node": "aaaaaaaaaaaa"},
               {"name": "50%", "ev": 0.91, "node": "bbbbbbbbbbbb"}]  # fmt: skip
    rows = [[latex.frame_cell(r["name"]), latex.frame_cell(r["ev"])] for r in records]
    tex = latex.table(["name", "ev"], rows, "Quality & stability", "tab:q", [("sae_quality", r["node"]) for r in records])
    assert "aaaaaaaaaaaa" in tex and "bbbbbbbbbbbb" in tex
    assert r"my\_run" in tex and r"50\%" in tex and "NaN" in tex and "0.910" in tex
    assert r"Quality \& stability" in tex


def test_sources_number_nodes_in_order_of_first_use():
    sources = latex.Sources()
    first = sources.mark("probe", "aaaaaaaaaaaa")
    second = sources.mark("causal", "bbbbbbbbbbbb")
    assert sources.mark("probe", "aaaaaaaaaaaa") == first == r"\nodesource{1}"
    assert second == r"\nodesource{2}"
    listing = sources.provenance()
    assert listing.index("aaaaaaaaaaaa") < listing.index("bbbbbbbbbbbb")
    assert r"\label{node:1}" in listing and r"\label{node:2}" in listing
