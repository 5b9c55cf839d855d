# Q1: the five-rung probe ladder.


use rule store_node as probe with:
    output:
        manifest=store_output("probe"),
    log:
        node_log("probe"),
    benchmark:
        node_benchmark("probe")
    conda:
        "../envs/analysis.yaml"
    resources:
        mem_mb=mem_mb_for(4000),
        runtime=60,
