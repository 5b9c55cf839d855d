# Backbones: the demo models trained inside the DAG (or a hub reference, paper profile).


rule backbone:
    input:
        unpack(parent_manifests),
    output:
        manifest=store_output("backbone"),
    log:
        node_log("backbone"),
    benchmark:
        "results/benchmarks/backbone/{node}.tsv"
    conda:
        "../envs/models.yaml"
    threads: 1
    resources:
        mem_mb=mem_mb_for("backbone", 4000),
        runtime=120,
        gpu=lambda wc: int(config["gpus"]),
    params:
        spec=node_spec,
    script:
        "../scripts/backbone.py"
