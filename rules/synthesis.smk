# The cross-modal synthesis (a store node), its human-facing views and the paper.


rule synthesis:
    input:
        unpack(parent_manifests),
    output:
        manifest=store_output("synthesis"),
    log:
        node_log("synthesis"),
    benchmark:
        "results/benchmarks/synthesis/{node}.tsv"
    conda:
        "../envs/analysis.yaml"
    threads: 1
    resources:
        mem_mb=mem_mb_for("synthesis", 2000),
        runtime=30,
    params:
        spec=node_spec,
    script:
        "../scripts/synthesis.py"


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
        tex=directory("paper/generated"),
    log:
        "logs/publish.log",
    localrule: True
    conda:
        "../envs/analysis.yaml"
    script:
        "../scripts/publish.py"


if shutil.which("latexmk") or shutil.which("tectonic"):

    rule paper:
        # `snakemake --cores 1 paper`: the generated tables and summary in paper/main.tex.
        input:
            tex="paper/generated",
            main="paper/main.tex",
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
        # No TeX here: the tables are still generated; say how to get the PDF.
        input:
            tex="paper/generated",
        log:
            "logs/paper.log",
        localrule: True
        conda:
            "../envs/paper.yaml"
        shell:
            "echo 'paper: skipped building paper/main.pdf (no latexmk or tectonic found; "
            "apt-get install latexmk texlive-latex-extra, or install tectonic). "
            "Generated tables: {input.tex}/' | tee {log} >&2"
