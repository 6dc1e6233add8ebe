"""Training a batch-size warm-up to a sweep's target, seed by seed, beside the sweep's best fixed
batch size: the check of Merrill et al. 2025's claim that a warm-up reaches the target in
fewer steps without losing final quality.

The warm-up (``advise.warmup_schedule``: phases of batch size and steps, the last one open)
trains on the sweep's workload with each phase at the sweep's best learning rate for its
batch size (re-tuned per phase: the sweep already tuned it; the other swept hyperparameters
are the final batch size's best), its open last phase running until the run has seen as many
examples as the sweep's run at the reference batch size did, so that the two end on the same
data budget. With a learning-rate schedule (cosine), the schedule spans the warm-up run's
planned steps. The target's metric is evaluated on the target's whole split every
``every_examples`` examples (default: 1/64 of the reference's median examples to target), so
steps to target are resolved to about 1.5% of the reference's. Seconds are steps times the
sweep's own seconds per step at each phase's batch size (the numbers its seconds to target
are made of), so the two compare like for like.

The reference is the sweep's fastest batch size (fewest mean seconds to target): its seeds'
steps and seconds to target and final value of the target's metric at its best setting.
Intervals are over seeds (``stats.mean_interval``, log scale for steps and seconds).
"""

from __future__ import annotations

import math
import time
from typing import Any

import jax
import numpy as np

from jbatch.analysis.selection import HIGHER_IS_BETTER, best_replicas
from jbatch.analysis.stats import mean_interval, ratio_interval
from jbatch.analysis.summary import summarize
from jbatch.core.epoch import make_evaluate
from jbatch.core.optim import set_hyperparameters
from jbatch.core.phases import Phase, examples_seen, train_phases
from jbatch.core.step import init_train_state, make_eval_step, make_train_step
from jbatch.errors import ConfigError
from jbatch.report.advice import verdict
from jbatch.sweeps.config import SweepConfig
from jbatch.sweeps.optimizer import sweep_optimizer
from jbatch.workloads.data import to_device
from jbatch.workloads.workload import Workload

LEVEL = 0.95


def reference(doc: dict[str, Any]) -> dict[str, Any]:
    """The sweep's fastest batch size (fewest mean seconds to target) and its seeds' numbers:
    steps, examples and seconds to target, the final value of the target's metric, and the
    best setting of every batch size (for the warm-up's phases)."""
    rows = summarize(doc)
    metric = doc["config"]["target_metric"]
    timed = {s["row"]["batch_size"]: s["row"]["seconds_to_target"]["mean"] for s in rows
             if s["row"]["seconds_to_target"]["n"]}  # fmt: skip
    if not timed:
        raise ConfigError("the sweep has no batch size that reached its target and was timed: nothing to compare with")
    fastest = min(timed, key=timed.__getitem__)
    s = next(x for x in rows if x["row"]["batch_size"] == fastest)
    reps = best_replicas(s["replicas"], s["row"])
    result = doc["batch_sizes"][str(fastest)]
    return {
        "batch_size": fastest,
        "learning_rate": s["row"]["best_learning_rate"],
        "steps_to_target": [r["steps_to_target"] for r in reps],
        "examples_to_target": [r["examples_to_target"] for r in reps],
        "seconds_to_target": [r["seconds_to_target"] for r in reps],
        "final": [r.get(f"final_{metric}") for r in reps],
        "budget_examples": examples_seen([Phase(fastest, result["budget_steps"])], doc["num_train"],
                                         doc["config"]["remainder"]),  # fmt: skip
        "settings": {x["row"]["batch_size"]: {"learning_rate": x["row"]["best_learning_rate"],
                                              **x["row"]["best_hyperparameters"]} for x in rows},
        "seconds_per_step": {int(b): r["timing"]["seconds_per_step"] for b, r in doc["batch_sizes"].items()
                             if r.get("timing")},
    }  # fmt: skip


def planned_phases(warmup: list[dict[str, int]], budget_examples: int, num_train: int,
                   remainder: str = "keep") -> list[Phase]:  # fmt: skip
    """The warm-up's phases with its open last phase given the steps that bring the run to
    ``budget_examples`` (at least one).

    Example:
      >>> planned_phases([{"batch_size": 4, "steps": 10}, {"batch_size": 16, "steps": 0}], 400, 1000)
      [Phase(batch_size=4, steps=10), Phase(batch_size=16, steps=23)]
      >>> planned_phases([{"batch_size": 32, "steps": 0}], 900, 300)  # 10 steps an epoch, the last of 12 rows
      [Phase(batch_size=32, steps=30)]
    """
    fixed = [Phase(p["batch_size"], p["steps"]) for p in warmup if p["steps"]]
    last = warmup[-1]["batch_size"]
    steps = max(1, math.ceil((budget_examples - examples_seen(fixed, num_train, remainder)) / last))
    while examples_seen([*fixed, Phase(last, steps)], num_train, remainder) < budget_examples:
        steps += 1  # partial last batches: an epoch's steps hold fewer than ``last`` examples on average
    return [*fixed, Phase(last, steps)]


def _spread(values: list[float | None], log: bool) -> dict[str, Any]:
    v = [float(x) for x in values if x is not None]
    lo, hi = mean_interval(v, LEVEL, log=log) if v else (math.nan, math.nan)
    mean = float(np.exp(np.mean(np.log(v)))) if v and log else float(np.mean(v)) if v else None
    return {"values": v, "n": len(v), "of": len(values), "mean": mean, "interval": [lo, hi]}


def check_warmup(config: SweepConfig, wl: Workload, doc: dict[str, Any], warmup: list[dict[str, int]],
                 seeds: tuple[int, ...] | None = None,
                 every_examples: int | None = None) -> dict[str, Any]:  # fmt: skip
    """Trains ``warmup`` to the sweep ``doc``'s target on each seed (see the module's
    docstring); returns per-seed numbers, their spreads and the ratios to the reference."""
    start = time.perf_counter()
    ref = reference(doc)
    ds = wl.data
    n = ds.num_train
    if n != doc["num_train"]:
        raise ConfigError(f"the sweep trained on {doc['num_train']} examples, this workload has {n}")
    missing = sorted({p["batch_size"] for p in warmup} - set(ref["settings"]) - set(ref["seconds_per_step"]))
    if missing:
        raise ConfigError(f"the warm-up uses batch sizes the sweep did not run ({missing}): no tuned learning rate or "
                          "timing for them")  # fmt: skip
    phases = planned_phases(warmup, ref["budget_examples"], n, config.remainder)
    lrs = [ref["settings"][p.batch_size]["learning_rate"] for p in phases]
    others = {k: v for k, v in ref["settings"][phases[-1].batch_size].items() if k != "learning_rate"}
    metric, target = doc["config"]["target_metric"], float(doc["config"]["target_value"])  # as the sweep resolved it
    split, key = metric.split("_", 1)
    key = "loss" if key == "loss" else "accuracy"
    higher = HIGHER_IS_BETTER[metric]
    train = to_device(ds.x_train, ds.y_train)
    evaluated = train if split == "train" else to_device(ds.x_test, ds.y_test)
    reached_examples = [e for e in ref["examples_to_target"] if e]
    every = every_examples or max(1, int(np.median(reached_examples)) // 64 if reached_examples else n // 64)
    optimizer = sweep_optimizer(config, wl, {})
    values = dict(others)
    if "budget" in optimizer.values:
        values["budget"] = float(sum(p.steps for p in phases))
    step = make_train_step(wl.loss, config.microbatch or None)
    evaluate = jax.jit(make_evaluate(make_eval_step(wl.loss, wl.classification)))
    programs: dict = {}
    per_seed = []
    for seed in seeds if seeds is not None else tuple(config.seeds):
        state = init_train_state(wl.model(seed), optimizer.tx)
        if values:
            state = state.replace(opt_state=set_hyperparameters(state.opt_state, values))
        curve: list[list[float]] = []
        hit: dict[str, Any] = {}

        def on_eval(state, at, examples, curve=curve, hit=hit):
            value = float(evaluate(state, evaluated)[key])
            curve.append([at, examples, value])
            if not hit and (value >= target if higher else value <= target):
                hit.update(step=at, examples=examples)
            return not math.isfinite(value)  # a diverged run ends

        state, records = train_phases(state, step, train, phases, learning_rates=lrs, seed=seed,
                                      remainder=config.remainder, programs=programs, every_examples=every,
                                      callback=on_eval)  # fmt: skip
        seconds = None
        if hit:
            left, seconds = hit["step"], 0.0
            for r in records:
                take = min(left, r.steps)
                seconds, left = seconds + take * ref["seconds_per_step"][r.batch_size], left - take
        per_seed.append({"seed": seed, "steps_to_target": hit.get("step"), "examples_to_target": hit.get("examples"),
                         "seconds_to_target": seconds, "final": curve[-1][2] if curve else None,
                         "curve": curve})  # fmt: skip
    out = {
        "phases": [{"batch_size": p.batch_size, "steps": p.steps, "learning_rate": lr}
                   for p, lr in zip(phases, lrs, strict=True)],
        "other_hyperparameters": others, "metric": metric, "target": target, "every_examples": every,
        "budget_examples": ref["budget_examples"], "seeds": per_seed,
        "reference": {k: v for k, v in ref.items() if k not in ("settings", "seconds_per_step")},
    }  # fmt: skip
    for name, log in (("steps_to_target", True), ("seconds_to_target", True), ("examples_to_target", True),
                      ("final", False)):  # fmt: skip
        mine, theirs = _spread([s[name] for s in per_seed], log), _spread(ref[name], log)
        out[name] = {"warmup": mine, "fixed": theirs}
        if log and mine["n"] and theirs["n"]:
            out[name]["ratio"] = mine["mean"] / theirs["mean"]
            out[name]["ratio_interval"] = list(ratio_interval(tuple(mine["interval"]), tuple(theirs["interval"])))
    out["higher_is_better"] = higher
    out["seconds"] = time.perf_counter() - start
    return out


def _interval(ci: list[float]) -> str:
    return f"[{ci[0]:.3g}, {ci[1]:.3g}]"


def _spread_text(x: dict[str, Any]) -> str:
    if not x["n"]:
        return f"not reached (0 of {x['of']})"
    missed = f", {x['of'] - x['n']} of {x['of']} missed" if x["n"] < x["of"] else ""
    return f"{x['mean']:.4g} {_interval(x['interval'])}{missed}"


def _ratio(x: dict[str, Any]) -> str:
    return f"{x['ratio']:.3g} {_interval(x['ratio_interval'])}" if "ratio" in x else "-"


def markdown_lines(check: dict[str, Any]) -> list[str]:
    """The check as a sentence, a table (warm-up, fixed, their ratio) and its verdict."""
    steps, secs, final = check["steps_to_target"], check["seconds_to_target"], check["final"]
    ref = check["reference"]["batch_size"]
    phases = " -> ".join(f"{p['batch_size']} x {p['steps']} (lr {p['learning_rate']:g})" for p in check["phases"])
    goal = f"{check['metric']} {'>=' if check['higher_is_better'] else '<='} {check['target']:g}"
    return [f"The warm-up trained to the target ({goal}) on {len(check['seeds'])} seeds, each phase at the sweep's "
            f"best learning rate for its batch size, for the examples the sweep's B = {ref} run saw: {phases}.", "",
            f"| | steps to target | seconds to target | final {check['metric']} |", "|---|---|---|---|",
            *(f"| {label} | {_spread_text(steps[k])} | {_spread_text(secs[k])} | {_spread_text(final[k])} |"
              for label, k in (("warm-up", "warmup"), (f"fixed B = {ref}", "fixed"))),
            f"| warm-up / fixed | {_ratio(steps)} | {_ratio(secs)} | |", "",
            f"Verdict on the steps (95% intervals over seeds): {verdict(check)}."]  # fmt: skip
