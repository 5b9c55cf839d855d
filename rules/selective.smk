# Q3/Q4: selective prediction, calibration and the cheap-to-expensive cascade.


use rule store_node as selective with:
    output:
        manifest=store_output("selective"),
    log:
        node_log("selective"),
    benchmark:
        node_benchmark("selective")
    conda:
        "../envs/analysis.yaml"
    resources:
        mem_mb=mem_mb_for(2000),
        runtime=30,
