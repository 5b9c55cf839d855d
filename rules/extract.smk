# Activation caches (zarr): pooled per example for the probes, token-level for the SAEs.


use rule store_node as extract with:
    output:
        manifest=store_output("extract"),
    log:
        node_log("extract"),
    benchmark:
        node_benchmark("extract")
    resources:
        mem_mb=mem_mb_for(4000),
        runtime=120,
        gpu=configured_gpus,


use rule store_node as sae_activations with:
    output:
        manifest=store_output("sae_activations"),
    log:
        node_log("sae_activations"),
    benchmark:
        node_benchmark("sae_activations")
    resources:
        mem_mb=mem_mb_for(4000),
        runtime=120,
        gpu=configured_gpus,
