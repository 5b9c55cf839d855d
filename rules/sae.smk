# SAEs (sae-lens), their quality and stability, and their codes for the probes.


rule sae:
    input:
        unpack(parent_manifests),
    output:
        manifest=store_output("sae"),
    params:
        spec=node_spec,
    log:
        node_log("sae"),
    threads: 1
    resources:
        mem_mb=mem_mb_for("sae", 4000),
        runtime=240,
        gpu=lambda wc: int(config["gpus"]),
    script:
        "../scripts/sae.py"


rule sae_quality:
    input:
        unpack(parent_manifests),
    output:
        manifest=store_output("sae_quality"),
    params:
        spec=node_spec,
    log:
        node_log("sae_quality"),
    threads: 1
    resources:
        mem_mb=mem_mb_for("sae_quality", 4000),
        runtime=60,
        gpu=lambda wc: int(config["gpus"]),
    script:
        "../scripts/sae_quality.py"


rule sae_stability:
    input:
        unpack(parent_manifests),
    output:
        manifest=store_output("sae_stability"),
    params:
        spec=node_spec,
    log:
        node_log("sae_stability"),
    threads: 1
    resources:
        mem_mb=mem_mb_for("sae_stability", 2000),
        runtime=30,
    script:
        "../scripts/sae_stability.py"


rule codes:
    input:
        unpack(parent_manifests),
    output:
        manifest=store_output("codes"),
    params:
        spec=node_spec,
    log:
        node_log("codes"),
    threads: 1
    resources:
        mem_mb=mem_mb_for("codes", 4000),
        runtime=60,
    script:
        "../scripts/codes.py"
