# Tasks (records, splits) and the backbones' answers on them (errors, cheap features).


use rule store_node as tasks with:
    output:
        manifest=store_output("tasks"),
    log:
        node_log("tasks"),
    benchmark:
        node_benchmark("tasks")
    resources:
        mem_mb=mem_mb_for(2000),
        runtime=30,


use rule store_node as evaluate with:
    output:
        manifest=store_output("evaluate"),
    log:
        node_log("evaluate"),
    benchmark:
        node_benchmark("evaluate")
    resources:
        mem_mb=mem_mb_for(4000),
        runtime=120,
        gpu=configured_gpus,


rule download_etth1:
    # For users who want a fresh copy of ETTh1 instead of the one in resources/.
    output:
        "resources/downloads/ETTh1.csv",
    log:
        "logs/download_etth1.log",
    localrule: True
    conda:
        "../envs/analysis.yaml"
    params:
        url="https://raw.githubusercontent.com/zhouhaoyi/ETDataset/main/ETT-small/ETTh1.csv",
        sha256="f18de3ad269cef59bb07b5438d79bb3042d3be49bdeecf01c1cd6d29695ee066",
    script:
        "../scripts/download_etth1.py"
