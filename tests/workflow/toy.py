"""A three-stage toy study on the real store mechanism (numbers -> scaled -> summary).

The foundation tests run Snakemake on it to check what a real config change re-runs,
without training any model.
"""

from __future__ import annotations

import time

import numpy as np

from sae_difficulty.pipeline.plan import Plan
from sae_difficulty.utils.io import read_json, write_json

VERSIONS = {"numbers": "1", "scaled": "1", "summary": "1"}


def build_plan(config: dict) -> Plan:
    plan = Plan(VERSIONS)
    numbers = plan.add("numbers", "numbers", {"n": config["n"], "seed": config["seed"]})
    scaled = plan.add("scaled", "scaled", {"factor": config["factor"]}, {"numbers": numbers})
    plan.summary = plan.add("summary", "summary", {"label": config["label"]}, {"scaled": scaled})
    return plan


def build_numbers(ctx) -> None:
    values = np.random.default_rng(ctx.params["seed"]).normal(size=ctx.params["n"])
    write_json(ctx.out / "numbers.json", values)


def build_scaled(ctx) -> None:
    values = np.asarray(read_json(ctx.parent("numbers") / "numbers.json")) * ctx.params["factor"]
    write_json(ctx.out / "scaled.json", values)
    # A pause in the middle of writing lets a test kill the job with a half-built node.
    (ctx.out / "started").write_text("writing\n")
    # The pause changes nothing in the output, so it is not part of the spec.
    time.sleep(float(ctx.config.get("pause_s", 0)))
    write_json(ctx.out / "more.json", {"n": len(values)})


def build_summary(ctx) -> None:
    values = read_json(ctx.parent("scaled") / "scaled.json")
    write_json(ctx.out / "summary.json", {"label": ctx.params["label"], "total": float(np.sum(values))})
