# SAE evaluations beyond difficulty (src/sae_difficulty/evals/): domain activations for
# prose- and code-trained SAEs (trained by the `sae` rule), cross-domain generalization,
# sparse probing, SAE vs skip-transcoder, steering, circuit faithfulness, external SAEs.


rule domain_activations:
    # prose-only or code-only residual rows (an SAE training cache)
    input:
        unpack(parent_manifests),
    output:
        manifest=store_output("domain_activations"),
    log:
        node_log("domain_activations"),
    benchmark:
        "results/benchmarks/domain_activations/{node}.tsv"
    conda:
        "../envs/models.yaml"
    threads: 1
    resources:
        mem_mb=mem_mb_for("domain_activations", 3000),
        runtime=60,
        gpu=lambda wc: int(config["gpus"]),
    params:
        spec=node_spec,
    script:
        "../scripts/domain_activations.py"


rule eval_cross_domain:
    # domain SAEs in and out of their domain, selectivity, top contexts
    input:
        unpack(parent_manifests),
    output:
        manifest=store_output("eval_cross_domain"),
    log:
        node_log("eval_cross_domain"),
    benchmark:
        "results/benchmarks/eval_cross_domain/{node}.tsv"
    conda:
        "../envs/models.yaml"
    threads: 1
    resources:
        mem_mb=mem_mb_for("eval_cross_domain", 4000),
        runtime=60,
        gpu=lambda wc: int(config["gpus"]),
    params:
        spec=node_spec,
    script:
        "../scripts/eval_cross_domain.py"


rule eval_sparse_probing:
    # top-k SAE latents vs top-k residual dimensions
    input:
        unpack(parent_manifests),
    output:
        manifest=store_output("eval_sparse_probing"),
    log:
        node_log("eval_sparse_probing"),
    benchmark:
        "results/benchmarks/eval_sparse_probing/{node}.tsv"
    conda:
        "../envs/analysis.yaml"
    threads: 1
    resources:
        mem_mb=mem_mb_for("eval_sparse_probing", 4000),
        runtime=60,
    params:
        spec=node_spec,
    script:
        "../scripts/eval_sparse_probing.py"


rule eval_transcoder:
    # an SAE and a skip-transcoder on one MLP, same recipe
    input:
        unpack(parent_manifests),
    output:
        manifest=store_output("eval_transcoder"),
    log:
        node_log("eval_transcoder"),
    benchmark:
        "results/benchmarks/eval_transcoder/{node}.tsv"
    conda:
        "../envs/models.yaml"
    threads: 1
    resources:
        mem_mb=mem_mb_for("eval_transcoder", 4000),
        runtime=240,
        gpu=lambda wc: int(config["gpus"]),
    params:
        spec=node_spec,
    script:
        "../scripts/eval_transcoder.py"


rule eval_steering:
    # SAE decoder direction vs diff-of-means, at matched fluency
    input:
        unpack(parent_manifests),
    output:
        manifest=store_output("eval_steering"),
    log:
        node_log("eval_steering"),
    benchmark:
        "results/benchmarks/eval_steering/{node}.tsv"
    conda:
        "../envs/models.yaml"
    threads: 1
    resources:
        mem_mb=mem_mb_for("eval_steering", 4000),
        runtime=120,
        gpu=lambda wc: int(config["gpus"]),
    params:
        spec=node_spec,
    script:
        "../scripts/eval_steering.py"


rule eval_circuit:
    # top-K attributed features vs random K-feature sets
    input:
        unpack(parent_manifests),
    output:
        manifest=store_output("eval_circuit"),
    log:
        node_log("eval_circuit"),
    benchmark:
        "results/benchmarks/eval_circuit/{node}.tsv"
    conda:
        "../envs/models.yaml"
    threads: 1
    resources:
        mem_mb=mem_mb_for("eval_circuit", 4000),
        runtime=120,
        gpu=lambda wc: int(config["gpus"]),
    params:
        spec=node_spec,
    script:
        "../scripts/eval_circuit.py"


rule eval_external:
    # an externally trained SAE: encode fidelity, then both domains
    input:
        unpack(parent_manifests),
    output:
        manifest=store_output("eval_external"),
    log:
        node_log("eval_external"),
    benchmark:
        "results/benchmarks/eval_external/{node}.tsv"
    conda:
        "../envs/models.yaml"
    threads: 1
    resources:
        mem_mb=mem_mb_for("eval_external", 4000),
        runtime=60,
        gpu=lambda wc: int(config["gpus"]),
    params:
        spec=node_spec,
    script:
        "../scripts/eval_external.py"


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
