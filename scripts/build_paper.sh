#!/usr/bin/env bash
# Build paper/main.pdf with latexmk (or tectonic); skip with a clear message when no TeX is installed.
set -euo pipefail
main=$1
output=$2
dir=$(dirname "$main")
if command -v latexmk >/dev/null 2>&1; then
    (cd "$dir" && latexmk -pdf -interaction=nonstopmode -halt-on-error "$(basename "$main")")
elif command -v tectonic >/dev/null 2>&1; then
    tectonic "$main"
else
    echo "No TeX installation found: install one (apt-get install latexmk texlive-latex-extra, or tectonic) to build $output." >&2
    echo "The generated tables are in $dir/generated/." >&2
    exit 1
fi
test -f "$output"
