# Q1: the five-rung probe ladder.


rule probe:
    input:
        unpack(parent_manifests),
    output:
        manifest=store_output("probe"),
    params:
        spec=node_spec,
    log:
        node_log("probe"),
    threads: 1
    resources:
        mem_mb=mem_mb_for("probe", 4000),
        runtime=60,
    script:
        "../scripts/probe.py"
