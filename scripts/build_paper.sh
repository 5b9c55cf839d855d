#!/usr/bin/env bash
# Build paper/main.pdf with latexmk (or tectonic); skip with a clear message when no TeX is installed.
# latexmk works in paper/build/ (aux files, the log it checks), then the PDF is copied next to main.tex.
set -euo pipefail
main=$1
output=$2
dir=$(dirname "$main")
name=$(basename "$main" .tex)
if command -v latexmk >/dev/null 2>&1; then
    (cd "$dir" && latexmk -pdf -interaction=nonstopmode -halt-on-error -outdir=build "$name.tex")
    cp "$dir/build/$name.pdf" "$output"
elif command -v tectonic >/dev/null 2>&1; then
    tectonic --outdir "$dir" "$main"
else
    echo "No TeX installation found: install one (apt-get install latexmk texlive-latex-extra texlive-fonts-recommended, or tectonic) to build $output." >&2
    echo "The generated sections are in $dir/generated/." >&2
    exit 1
fi
test -f "$output"
