# Q2: causal reconstruction patching of the top probe features.


rule causal:
    input:
        unpack(parent_manifests),
    output:
        manifest=store_output("causal"),
    log:
        node_log("causal"),
    benchmark:
        "results/benchmarks/causal/{node}.tsv"
    conda:
        "../envs/models.yaml"
    threads: 1
    resources:
        mem_mb=mem_mb_for("causal", 4000),
        runtime=120,
        gpu=lambda wc: int(config["gpus"]),
    params:
        spec=node_spec,
    script:
        "../scripts/causal.py"
