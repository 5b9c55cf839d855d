# SAEs (sae-lens), their quality and stability, and their codes for the probes.


rule sae:
    input:
        unpack(parent_manifests),
    output:
        manifest=store_output("sae"),
    log:
        node_log("sae"),
    benchmark:
        "results/benchmarks/sae/{node}.tsv"
    conda:
        "../envs/models.yaml"
    threads: 1
    resources:
        mem_mb=mem_mb_for("sae", 4000),
        runtime=240,
        gpu=lambda wc: int(config["gpus"]),
    params:
        spec=node_spec,
    script:
        "../scripts/sae.py"


rule sae_quality:
    input:
        unpack(parent_manifests),
    output:
        manifest=store_output("sae_quality"),
    log:
        node_log("sae_quality"),
    benchmark:
        "results/benchmarks/sae_quality/{node}.tsv"
    conda:
        "../envs/models.yaml"
    threads: 1
    resources:
        mem_mb=mem_mb_for("sae_quality", 4000),
        runtime=60,
        gpu=lambda wc: int(config["gpus"]),
    params:
        spec=node_spec,
    script:
        "../scripts/sae_quality.py"


rule sae_stability:
    input:
        unpack(parent_manifests),
    output:
        manifest=store_output("sae_stability"),
    log:
        node_log("sae_stability"),
    benchmark:
        "results/benchmarks/sae_stability/{node}.tsv"
    conda:
        "../envs/analysis.yaml"
    threads: 1
    resources:
        mem_mb=mem_mb_for("sae_stability", 2000),
        runtime=30,
    params:
        spec=node_spec,
    script:
        "../scripts/sae_stability.py"


rule codes:
    input:
        unpack(parent_manifests),
    output:
        manifest=store_output("codes"),
    log:
        node_log("codes"),
    benchmark:
        "results/benchmarks/codes/{node}.tsv"
    conda:
        "../envs/models.yaml"
    threads: 1
    resources:
        mem_mb=mem_mb_for("codes", 4000),
        runtime=60,
    params:
        spec=node_spec,
    script:
        "../scripts/codes.py"
