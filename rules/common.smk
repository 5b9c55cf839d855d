# Config validation, the content-addressed plan and path helpers shared by every rule.
import shutil
import sys
from pathlib import Path

sys.path.insert(0, str(Path(workflow.basedir) / "src"))

from snakemake.utils import validate

from sae_difficulty.pipeline.config import SCHEMA_PATH, finalize_run_config
from sae_difficulty.utils.errors import InputError
from sae_difficulty.pipeline.study import build_plan, memory_request_mb

try:
    # One-line errors naming the key (and the store / data-file checks the CLI shares);
    # then Snakemake's own validator (same schema, same defaults).
    finalize_run_config(config)
except InputError as error:
    raise WorkflowError(f"invalid config: {error}") from None
validate(config, str(SCHEMA_PATH), set_default=True)

PLAN = build_plan(config)
STORE = config["store"]


wildcard_constraints:
    node="[0-9a-f]{12}",


def store_output(stage):
    """The manifest of a node: written last, so its presence means the node is complete."""
    return f"{STORE}/{stage}/{{node}}/manifest.json"


def node_log(stage):
    return f"logs/{stage}/{{node}}.log"


def manifest(node):
    return f"{STORE}/{node.stage}/{node.id}/manifest.json"


def parent_manifests(wildcards):
    """Input function: each parent's manifest, named by its role (snakemake.input.<role>)."""
    return {
        role: manifest(parent) for role, parent in PLAN[wildcards.node].parents.items()
    }


def node_spec(wildcards):
    return PLAN[wildcards.node].spec


def node_params(wildcards):
    return PLAN[wildcards.node].params


def node_benchmark(stage):
    return f"results/benchmarks/{stage}/{{node}}.tsv"


def mem_mb_for(base_mb):
    """Memory request: the stage's base plus what the node's backbone/SAE sizes need,
    scaled by the attempt (a retried job asks for more)."""

    def request(wildcards, attempt):
        return memory_request_mb(PLAN[wildcards.node], base_mb) * attempt

    return request


def configured_gpus(wildcards):
    """GPU request of the stages that can use one: `gpus` from the config."""
    return int(config["gpus"])


# The warm worker (sae_difficulty.pipeline.warm_worker): on a local run, one process imports
# the stages' libraries once and forks a child per job, so jobs skip 1-8 s of imports each.
# onstart returns once it has imported (about 8 s), so no job imports beside it. Cluster jobs
# (a non-local executor) never use it. SAE_DIFFICULTY_WARM_WORKER=0 turns it off.
from sae_difficulty.pipeline import warm_worker

WARM_WORKERS = []


def stop_warm_workers():
    while WARM_WORKERS:
        WARM_WORKERS.pop().stop()


onstart:
    if workflow.local_exec and warm_worker.enabled():
        print(
            "Starting the warm worker (imports the stages' libraries once, about 10 s)...",
            file=sys.stderr,
        )
        handle = warm_worker.start("logs/warm_worker.log")
        if handle is not None:
            WARM_WORKERS.append(handle)


onsuccess:
    stop_warm_workers()


onerror:
    stop_warm_workers()
