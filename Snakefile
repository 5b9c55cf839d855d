# sae-difficulty: do SAE features of a foundation model encode a self-difficulty signal?
# Default target: results/cross_modal_synthesis.md from config/config.yaml (offline demo).
from snakemake.utils import min_version

min_version("8.0")


configfile: "config/config.yaml"


include: "rules/common.smk"
include: "rules/store_node.smk"
include: "rules/backbone.smk"
include: "rules/data.smk"
include: "rules/extract.smk"
include: "rules/sae.smk"
include: "rules/probe.smk"
include: "rules/causal.smk"
include: "rules/selective.smk"
include: "rules/synthesis.smk"
include: "rules/modular.smk"
include: "rules/sae_evals.smk"
include: "rules/synthetic.smk"


rule all:
    default_target: True
    input:
        "results/cross_modal_synthesis.md",
        "results/modular/stability.md" if config["modular"]["enabled"] else [],
        "results/ground_truth.md" if config["synthetic"]["enabled"] else [],
        "results/sae_evals.md" if EVAL_NODES else [],
        "results/ledger.md",
