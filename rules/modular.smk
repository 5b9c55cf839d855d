# Feature stability with ground truth: a transformer that groks (a + b) mod p, its
# residual stream, SAEs across seeds (the `sae` rule), PWMCC and Fourier recovery.


use rule store_node as modular_backbone with:
    output:
        manifest=store_output("modular_backbone"),
    log:
        node_log("modular_backbone"),
    benchmark:
        node_benchmark("modular_backbone")
    resources:
        mem_mb=mem_mb_for(3000),
        runtime=120,


use rule store_node as modular_activations with:
    output:
        manifest=store_output("modular_activations"),
    log:
        node_log("modular_activations"),
    benchmark:
        node_benchmark("modular_activations")
    resources:
        mem_mb=mem_mb_for(2000),
        runtime=15,


use rule store_node as modular_stability with:
    output:
        manifest=store_output("modular_stability"),
    log:
        node_log("modular_stability"),
    benchmark:
        node_benchmark("modular_stability")
    resources:
        mem_mb=mem_mb_for(3000),
        runtime=30,


MODULAR = (
    PLAN.modular
)  # the handles add_modular_nodes returned; {} when modular.enabled is false


if MODULAR:

    rule modular_report:
        # Cheap human-facing copies of the stability node's report, table and figures.
        input:
            stability=manifest(MODULAR["stability"]),
        output:
            markdown=MODULAR["report"]["markdown"],
            table=MODULAR["report"]["table"],
            figures=report(
                directory(MODULAR["report"]["figures"]),
                patterns=["{name}.png"],
                caption="../report/figures.rst",
                category="Modular arithmetic",
            ),
        log:
            "logs/modular_report.log",
        localrule: True
        conda:
            "../envs/analysis.yaml"
        script:
            "../scripts/modular_report.py"
