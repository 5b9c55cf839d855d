# Q3/Q4: selective prediction, calibration and the cheap-to-expensive cascade.


rule selective:
    input:
        unpack(parent_manifests),
    output:
        manifest=store_output("selective"),
    log:
        node_log("selective"),
    benchmark:
        "results/benchmarks/selective/{node}.tsv"
    conda:
        "../envs/analysis.yaml"
    threads: 1
    resources:
        mem_mb=mem_mb_for("selective", 2000),
        runtime=30,
    params:
        spec=node_spec,
    script:
        "../scripts/selective.py"
