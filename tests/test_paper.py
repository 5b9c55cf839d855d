"""`snakemake paper` on the CI config's run: the PDF builds, has no undefined reference or
citation, runs to four or more pages, and its text holds the synthesis' headline numbers."""

from __future__ import annotations

import json
import re
import shutil
import subprocess

import pytest
from conftest import RERUN_TRIGGERS, run_snakemake

pytestmark = pytest.mark.paper

TOOLS = ("latexmk", "pdfinfo", "pdftotext")
MISSING = [tool for tool in TOOLS if shutil.which(tool) is None]
MIN_PAGES = 4


@pytest.mark.skipif(bool(MISSING), reason=f"missing {', '.join(MISSING)}: apt-get install latexmk texlive-latex-extra "
                    "texlive-fonts-recommended poppler-utils (.ci/run does when root)")  # fmt: skip
def test_the_paper_builds_from_the_ci_run_with_its_numbers(ci_runs):
    workdir = ci_runs[0]
    run_snakemake(["--cores", "1", "paper", "--configfile", "config/ci.yaml", *RERUN_TRIGGERS], cwd=workdir, timeout=1200)
    pdf = workdir / "paper" / "main.pdf"
    assert pdf.is_file()  # build_paper.sh runs under `set -e`: latexmk exited 0

    log = (workdir / "paper" / "build" / "main.log").read_text(errors="replace")
    assert not re.search(r"(Reference|Citation) `[^']*' on page \d+ undefined", log)
    assert "There were undefined references" not in log and "Citation" not in re.findall(r"Warning: (\w+)", log)

    info = subprocess.run(["pdfinfo", str(pdf)], capture_output=True, text=True, check=True).stdout
    pages = int(re.search(r"^Pages:\s+(\d+)", info, re.MULTILINE).group(1))
    assert pages >= MIN_PAGES

    text = subprocess.run(["pdftotext", str(pdf), "-"], capture_output=True, text=True, check=True).stdout
    text = text.replace("\u2212", "-")  # the PDF's minus sign
    synthesis = json.loads((workdir / "results" / "cross_modal_synthesis.json").read_text())
    for column, verdict in synthesis["verdicts"].items():
        p2 = next(r["value"] for r in synthesis["main"] if r["column"] == column and r["row"].startswith("P2 "))
        for value in (verdict["p3_auroc"], p2):
            assert f"{value:.3f}" in text, (column, value)
        assert f"{verdict['delta']:+.3f}" in text, (column, verdict["delta"])
