# Activation caches (zarr): pooled per example for the probes, token-level for the SAEs.


rule extract:
    input:
        unpack(parent_manifests),
    output:
        manifest=store_output("extract"),
    log:
        node_log("extract"),
    benchmark:
        "results/benchmarks/extract/{node}.tsv"
    conda:
        "../envs/models.yaml"
    threads: 1
    resources:
        mem_mb=mem_mb_for("extract", 4000),
        runtime=120,
        gpu=lambda wc: int(config["gpus"]),
    params:
        spec=node_spec,
    script:
        "../scripts/extract.py"


rule sae_activations:
    input:
        unpack(parent_manifests),
    output:
        manifest=store_output("sae_activations"),
    log:
        node_log("sae_activations"),
    benchmark:
        "results/benchmarks/sae_activations/{node}.tsv"
    conda:
        "../envs/models.yaml"
    threads: 1
    resources:
        mem_mb=mem_mb_for("sae_activations", 4000),
        runtime=120,
        gpu=lambda wc: int(config["gpus"]),
    params:
        spec=node_spec,
    script:
        "../scripts/sae_activations.py"
