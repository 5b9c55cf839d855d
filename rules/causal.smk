# Q2: causal reconstruction patching of the top probe features.


use rule store_node as causal with:
    output:
        manifest=store_output("causal"),
    log:
        node_log("causal"),
    benchmark:
        node_benchmark("causal")
    resources:
        mem_mb=mem_mb_for(4000),
        runtime=120,
        gpu=configured_gpus,
