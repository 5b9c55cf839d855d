# The template of every rule that builds one store node. Each stage is
# `use rule store_node as <stage> with:` and states only what differs: its output, log and
# benchmark (named by the stage), resources, and its conda env when not the models env.


# Never a target itself: no plan node has the stage "store_node".
rule store_node:
    input:
        # Each parent's manifest, named by its role (snakemake.input.<role>).
        unpack(parent_manifests),
    output:
        manifest=store_output("store_node"),
    log:
        node_log("store_node"),
    benchmark:
        node_benchmark("store_node")
    conda:
        "../envs/models.yaml"
    threads: 1
    params:
        spec=node_spec,
    script:
        # A node's spec names its stage, which is the rule's name: scripts/<stage>.py.
        "../scripts/{params.spec[stage]}.py"
