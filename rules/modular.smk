# Feature stability with ground truth: a transformer that groks (a + b) mod p, its
# residual stream, SAEs across seeds (the `sae` rule), PWMCC and Fourier recovery.


rule modular_backbone:
    input:
        unpack(parent_manifests),
    output:
        manifest=store_output("modular_backbone"),
    log:
        node_log("modular_backbone"),
    benchmark:
        "results/benchmarks/modular_backbone/{node}.tsv"
    conda:
        "../envs/models.yaml"
    threads: 1
    resources:
        mem_mb=mem_mb_for("modular_backbone", 3000),
        runtime=120,
    params:
        spec=node_spec,
    script:
        "../scripts/modular_backbone.py"


rule modular_activations:
    input:
        unpack(parent_manifests),
    output:
        manifest=store_output("modular_activations"),
    log:
        node_log("modular_activations"),
    benchmark:
        "results/benchmarks/modular_activations/{node}.tsv"
    conda:
        "../envs/models.yaml"
    threads: 1
    resources:
        mem_mb=mem_mb_for("modular_activations", 2000),
        runtime=15,
    params:
        spec=node_spec,
    script:
        "../scripts/modular_activations.py"


rule modular_stability:
    input:
        unpack(parent_manifests),
    output:
        manifest=store_output("modular_stability"),
    log:
        node_log("modular_stability"),
    benchmark:
        "results/benchmarks/modular_stability/{node}.tsv"
    conda:
        "../envs/models.yaml"
    threads: 1
    resources:
        mem_mb=mem_mb_for("modular_stability", 3000),
        runtime=30,
    params:
        spec=node_spec,
    script:
        "../scripts/modular_stability.py"


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
