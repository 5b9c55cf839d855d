# Exact ground truth for the SAE recipes: an sae-lens synthetic model with a known
# dictionary, its samples as an SAE training cache, SAEs across recipes, L0, widths and
# seeds (the `sae` rule), each scored against the truth, and the answer: does stability
# across seeds predict recovery of the true features?


use rule store_node as synthetic_model with:
    output:
        manifest=store_output("synthetic_model"),
    log:
        node_log("synthetic_model"),
    benchmark:
        node_benchmark("synthetic_model")
    resources:
        mem_mb=mem_mb_for(2000),
        runtime=30,


use rule store_node as synthetic_activations with:
    output:
        manifest=store_output("synthetic_activations"),
    log:
        node_log("synthetic_activations"),
    benchmark:
        node_benchmark("synthetic_activations")
    resources:
        mem_mb=mem_mb_for(3000),
        runtime=30,


# one SAE against the true dictionary (MCC, per-latent matches, firing detectors)
use rule store_node as eval_ground_truth with:
    output:
        manifest=store_output("eval_ground_truth"),
    log:
        node_log("eval_ground_truth"),
    benchmark:
        node_benchmark("eval_ground_truth")
    resources:
        mem_mb=mem_mb_for(2000),
        runtime=30,


# the answer: PWMCC across seeds beside MCC to the truth, stability vs recovery, verdict
use rule store_node as ground_truth with:
    output:
        manifest=store_output("ground_truth"),
    log:
        node_log("ground_truth"),
    benchmark:
        node_benchmark("ground_truth")
    conda:
        "../envs/analysis.yaml"
    resources:
        mem_mb=mem_mb_for(2000),
        runtime=30,


SYNTHETIC = (
    PLAN.synthetic
)  # the handles add_synthetic_nodes returned; {} when synthetic.enabled is false


if SYNTHETIC:

    rule ground_truth_report:
        # Cheap human-facing copies of the answer node's report, table and figures.
        input:
            answer=manifest(SYNTHETIC["answer"]),
        output:
            markdown=SYNTHETIC["report"]["markdown"],
            table=SYNTHETIC["report"]["table"],
            figures=report(
                directory(SYNTHETIC["report"]["figures"]),
                patterns=["{name}.png"],
                caption="../report/figures.rst",
                category="Ground truth (synthetic)",
            ),
        log:
            "logs/ground_truth_report.log",
        localrule: True
        conda:
            "../envs/analysis.yaml"
        script:
            "../scripts/ground_truth_report.py"
