# SAEs (sae-lens), their quality and stability, and their codes for the probes.


use rule store_node as sae with:
    output:
        manifest=store_output("sae"),
    log:
        node_log("sae"),
    benchmark:
        node_benchmark("sae")
    resources:
        mem_mb=mem_mb_for(4000),
        runtime=240,
        gpu=configured_gpus,


# A published SAE (sae.pretrained), resolved with sae-lens' registry, in place of a trained one.
use rule store_node as sae_pretrained with:
    output:
        manifest=store_output("sae_pretrained"),
    log:
        node_log("sae_pretrained"),
    benchmark:
        node_benchmark("sae_pretrained")
    resources:
        mem_mb=mem_mb_for(8000),
        runtime=60,


use rule store_node as sae_quality with:
    output:
        manifest=store_output("sae_quality"),
    log:
        node_log("sae_quality"),
    benchmark:
        node_benchmark("sae_quality")
    resources:
        mem_mb=mem_mb_for(4000),
        runtime=60,
        gpu=configured_gpus,


use rule store_node as sae_stability with:
    output:
        manifest=store_output("sae_stability"),
    log:
        node_log("sae_stability"),
    benchmark:
        node_benchmark("sae_stability")
    conda:
        "../envs/analysis.yaml"
    resources:
        mem_mb=mem_mb_for(2000),
        runtime=30,


use rule store_node as codes with:
    output:
        manifest=store_output("codes"),
    log:
        node_log("codes"),
    benchmark:
        node_benchmark("codes")
    resources:
        mem_mb=mem_mb_for(4000),
        runtime=60,
