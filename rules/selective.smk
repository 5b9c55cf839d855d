# Q3/Q4: selective prediction, calibration and the cheap-to-expensive cascade.


rule selective:
    input:
        unpack(parent_manifests),
    output:
        manifest=store_output("selective"),
    params:
        spec=node_spec,
    log:
        node_log("selective"),
    threads: 1
    resources:
        mem_mb=mem_mb_for("selective", 2000),
        runtime=30,
    script:
        "../scripts/selective.py"
