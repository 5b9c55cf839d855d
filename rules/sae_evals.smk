# SAE evaluations beyond difficulty (src/sae_difficulty/evals/): domain activations for
# prose- and code-trained SAEs (trained by the `sae` rule), cross-domain generalization,
# sparse probing, SAE vs skip-transcoder, steering, circuit faithfulness, external SAEs.


# prose-only or code-only residual rows (an SAE training cache)
use rule store_node as domain_activations with:
    output:
        manifest=store_output("domain_activations"),
    log:
        node_log("domain_activations"),
    benchmark:
        node_benchmark("domain_activations")
    resources:
        mem_mb=mem_mb_for(3000),
        runtime=60,
        gpu=configured_gpus,


# domain SAEs in and out of their domain, selectivity, top contexts
use rule store_node as eval_cross_domain with:
    output:
        manifest=store_output("eval_cross_domain"),
    log:
        node_log("eval_cross_domain"),
    benchmark:
        node_benchmark("eval_cross_domain")
    resources:
        mem_mb=mem_mb_for(4000),
        runtime=60,
        gpu=configured_gpus,


# top-k SAE latents vs top-k residual dimensions
use rule store_node as eval_sparse_probing with:
    output:
        manifest=store_output("eval_sparse_probing"),
    log:
        node_log("eval_sparse_probing"),
    benchmark:
        node_benchmark("eval_sparse_probing")
    conda:
        "../envs/analysis.yaml"
    resources:
        mem_mb=mem_mb_for(4000),
        runtime=60,


# an SAE and a skip-transcoder on one MLP, same recipe
use rule store_node as eval_transcoder with:
    output:
        manifest=store_output("eval_transcoder"),
    log:
        node_log("eval_transcoder"),
    benchmark:
        node_benchmark("eval_transcoder")
    resources:
        mem_mb=mem_mb_for(4000),
        runtime=240,
        gpu=configured_gpus,


# SAE decoder direction vs diff-of-means, at matched fluency
use rule store_node as eval_steering with:
    output:
        manifest=store_output("eval_steering"),
    log:
        node_log("eval_steering"),
    benchmark:
        node_benchmark("eval_steering")
    resources:
        mem_mb=mem_mb_for(4000),
        runtime=120,
        gpu=configured_gpus,


# top-K attributed features vs random K-feature sets
use rule store_node as eval_circuit with:
    output:
        manifest=store_output("eval_circuit"),
    log:
        node_log("eval_circuit"),
    benchmark:
        node_benchmark("eval_circuit")
    resources:
        mem_mb=mem_mb_for(4000),
        runtime=120,
        gpu=configured_gpus,


# an externally trained SAE: encode fidelity, then both domains
use rule store_node as eval_external with:
    output:
        manifest=store_output("eval_external"),
    log:
        node_log("eval_external"),
    benchmark:
        node_benchmark("eval_external")
    resources:
        mem_mb=mem_mb_for(4000),
        runtime=60,
        gpu=configured_gpus,


from sae_difficulty.reports.ledger import RESULT_STAGES, describe_node

RESULT_NODES = [node for node in PLAN.nodes.values() if node.stage in RESULT_STAGES]


rule ledger:
    # One row per store node of this config that holds a result (results/ledger.md, .parquet).
    input:
        [manifest(node) for node in RESULT_NODES],
    output:
        markdown="results/ledger.md",
        table="results/ledger.parquet",
    log:
        "logs/ledger.log",
    localrule: True
    conda:
        "../envs/analysis.yaml"
    params:
        nodes=[describe_node(node) for node in RESULT_NODES],
    script:
        "../scripts/ledger.py"


EVAL_NODES = [node for nodes in PLAN.evals.values() for node in nodes]


if EVAL_NODES:

    rule sae_evals_report:
        # The suite's headlines, tables and figures on one page (results/sae_evals.md).
        input:
            [manifest(node) for node in EVAL_NODES],
        output:
            markdown="results/sae_evals.md",
            figures=report(
                directory("results/sae_evals"),
                patterns=["{name}.png"],
                caption="../report/figures.rst",
                category="SAE evaluations",
            ),
        log:
            "logs/sae_evals_report.log",
        localrule: True
        conda:
            "../envs/analysis.yaml"
        params:
            nodes=[
                {"stage": node.stage, "key": node.key, "node": node.id}
                for node in EVAL_NODES
            ],
        script:
            "../scripts/sae_evals_report.py"


# a small meta-SAE on the primary SAE's decoder rows vs on random directions (CPU, seconds)
use rule store_node as eval_meta_structure with:
    output:
        manifest=store_output("eval_meta_structure"),
    log:
        node_log("eval_meta_structure"),
    benchmark:
        node_benchmark("eval_meta_structure")
    resources:
        mem_mb=mem_mb_for(2000),
        runtime=30,
