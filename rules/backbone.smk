# Backbones: the demo models trained inside the DAG (or a hub reference, paper profile).


use rule store_node as backbone with:
    output:
        manifest=store_output("backbone"),
    log:
        node_log("backbone"),
    benchmark:
        node_benchmark("backbone")
    resources:
        mem_mb=mem_mb_for(4000),
        runtime=120,
        gpu=configured_gpus,
