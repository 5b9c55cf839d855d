# Q1: the five-rung probe ladder.


rule probe:
    input:
        unpack(parent_manifests),
    output:
        manifest=store_output("probe"),
    log:
        node_log("probe"),
    benchmark:
        "results/benchmarks/probe/{node}.tsv"
    conda:
        "../envs/analysis.yaml"
    threads: 1
    resources:
        mem_mb=mem_mb_for("probe", 4000),
        runtime=60,
    params:
        spec=node_spec,
    script:
        "../scripts/probe.py"
