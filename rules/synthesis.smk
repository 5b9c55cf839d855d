# The cross-modal synthesis (a store node), its human-facing views and the paper.


use rule store_node as synthesis with:
    output:
        manifest=store_output("synthesis"),
    log:
        node_log("synthesis"),
    benchmark:
        node_benchmark("synthesis")
    conda:
        "../envs/analysis.yaml"
    resources:
        mem_mb=mem_mb_for(2000),
        runtime=30,


rule publish:
    # Cheap human-facing copies of the synthesis node; the only outputs outside the store.
    input:
        synthesis=manifest(PLAN.synthesis),
    output:
        markdown="results/cross_modal_synthesis.md",
        table="results/cross_modal_synthesis.parquet",
        detail="results/cross_modal_synthesis.json",
        figures=report(
            directory("results/figures"),
            patterns=["{name}.png"],
            caption="../report/figures.rst",
            category="Figures",
        ),
    log:
        "logs/publish.log",
    localrule: True
    conda:
        "../envs/analysis.yaml"
    script:
        "../scripts/publish.py"


MANUSCRIPT_EVALS = [node for nodes in PLAN.evals.values() for node in nodes]


rule manuscript:
    # The paper's generated sections: numbers and verdicts of the synthesis node, the method from
    # the resolved config and the plan, the evaluation suite's headlines (paper/generated/).
    input:
        synthesis=manifest(PLAN.synthesis),
        evals=[manifest(node) for node in MANUSCRIPT_EVALS],
    output:
        tex=directory("paper/generated"),
    log:
        "logs/manuscript.log",
    localrule: True
    conda:
        "../envs/analysis.yaml"
    params:
        evals=[
            {"stage": node.stage, "key": node.key, "node": node.id}
            for node in MANUSCRIPT_EVALS
        ],
    script:
        "../scripts/manuscript.py"


if shutil.which("latexmk") or shutil.which("tectonic"):

    rule paper:
        # `snakemake --cores 1 paper`: the manuscript (paper/main.tex inputs paper/generated/).
        input:
            tex="paper/generated",
            main="paper/main.tex",
            bib="paper/references.bib",
        output:
            "paper/main.pdf",
        log:
            "logs/paper.log",
        localrule: True
        conda:
            "../envs/paper.yaml"
        shell:
            "bash scripts/build_paper.sh {input.main} {output} > {log} 2>&1"

else:

    rule paper:
        # No TeX here: the manuscript's sections are still generated; say how to get the PDF.
        input:
            tex="paper/generated",
        log:
            "logs/paper.log",
        localrule: True
        conda:
            "../envs/paper.yaml"
        shell:
            "echo 'paper: skipped building paper/main.pdf (no latexmk or tectonic found; "
            "apt-get install latexmk texlive-latex-extra texlive-fonts-recommended, or install tectonic). "
            "Generated sections: {input.tex}/' | tee {log} >&2"
