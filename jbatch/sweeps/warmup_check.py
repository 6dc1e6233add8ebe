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
from collections.abc import Callable
from typing import Any

import numpy as np

from jbatch.analysis.selection import best_replicas
from jbatch.analysis.stats import mean_interval, ratio_interval
from jbatch.analysis.summary import summarize
from jbatch.core.phases import Phase, examples_seen, train_phases
from jbatch.errors import ConfigError
from jbatch.results import records
from jbatch.results.records import Comparison, SeedRun, Spread, SweepDocument, WarmupCheck
from jbatch.sweeps.session import Session

LEVEL = 0.95


def reference(doc: SweepDocument) -> dict[str, Any]:
    """The sweep's fastest batch size (fewest mean seconds to target) and its seeds' numbers:
    steps, examples and seconds to target, the final value of the target's metric, and the
    best setting of every batch size (for the warm-up's phases)."""
    rows = summarize(doc)
    metric = doc.config.target.metric
    timed = {
        s["row"]["batch_size"]: s["row"]["seconds_to_target"]["mean"]
        for s in rows
        if s["row"]["seconds_to_target"]["n"]
    }
    if not timed:
        raise ConfigError("the sweep has no batch size that reached its target and was timed: nothing to compare with")
    fastest = min(timed, key=timed.__getitem__)
    s = next(x for x in rows if x["row"]["batch_size"] == fastest)
    reps = best_replicas(s["replicas"], s["row"])
    result = doc.result(fastest)
    return {
        "batch_size": fastest,
        "learning_rate": s["row"]["best_learning_rate"],
        "steps_to_target": [r["steps_to_target"] for r in reps],
        "examples_to_target": [r["examples_to_target"] for r in reps],
        "seconds_to_target": [r["seconds_to_target"] for r in reps],
        "final": [r.get(f"final_{metric}") for r in reps],
        "budget_examples": examples_seen(
            [Phase(fastest, result.budget_steps)], doc.num_train, doc.config.training.remainder
        ),
        "settings": {
            x["row"]["batch_size"]: {
                "learning_rate": x["row"]["best_learning_rate"],
                **x["row"]["best_hyperparameters"],
            }
            for x in rows
        },
        "seconds_per_step": {r.batch_size: r.timing.seconds_per_step for r in doc.results if r.timing},
    }


def planned_phases(
    warmup: list[records.Phase], budget_examples: int, num_train: int, remainder: str = "keep"
) -> list[Phase]:
    """The warm-up's phases with its open last phase given the steps that bring the run to
    ``budget_examples`` (at least one).

    Examples:
      >>> P = records.Phase
      >>> planned_phases([P(batch_size=4, steps=10), P(batch_size=16, steps=0)], 400, 1000)
      [Phase(batch_size=4, steps=10), Phase(batch_size=16, steps=23)]
      >>> planned_phases([P(batch_size=32, steps=0)], 900, 300)  # 10 steps an epoch, the last of 12 rows
      [Phase(batch_size=32, steps=30)]
    """
    fixed = [Phase(p.batch_size, p.steps) for p in warmup if p.steps]
    last = warmup[-1].batch_size
    steps = max(1, math.ceil((budget_examples - examples_seen(fixed, num_train, remainder)) / last))
    while examples_seen([*fixed, Phase(last, steps)], num_train, remainder) < budget_examples:
        steps += 1  # partial last batches: an epoch's steps hold fewer than ``last`` examples on average
    return [*fixed, Phase(last, steps)]


def _spread(values: list[float | None], log: bool) -> Spread:
    v = [float(x) for x in values if x is not None]
    lo, hi = mean_interval(v, LEVEL, log=log) if v else (math.nan, math.nan)
    mean = float(np.exp(np.mean(np.log(v)))) if v and log else float(np.mean(v)) if v else None
    return Spread(values=v, n=len(v), of=len(values), mean=mean, interval=[lo, hi])


def check_warmup(
    session: Session,
    doc: SweepDocument,
    warmup: list[records.Phase],
    seeds: tuple[int, ...] | None = None,
    every_examples: int | None = None,
    say: Callable[[str], None] | None = None,
    rates: Callable[[list[Phase], float], list[float]] | None = None,
) -> WarmupCheck:
    """Trains ``warmup`` to the sweep ``doc``'s target on each seed (see the module's
    docstring) with the session's programs; returns per-seed numbers, their spreads and the
    ratios to the reference. ``say``: a line after each seed (progress). ``rates(phases,
    lr)``: the phases' learning rates from the sweep's best ``lr`` at the first phase's batch
    size (``seesaw.rates``), instead of each size's own best; the other phases' sizes then
    need not be swept (their seconds per step are ``seesaw.interpolated`` from the sweep's)."""
    from jbatch.sweeps.seesaw import interpolated

    start = time.perf_counter()
    config = session.config
    ref = reference(doc)
    n = session.workload.data.num_train
    if n != doc.num_train:
        raise ConfigError(f"the sweep trained on {doc.num_train} examples, this workload has {n}")
    needed = {warmup[0].batch_size} if rates else {p.batch_size for p in warmup}
    missing = sorted(needed - set(ref["settings"]) - set(ref["seconds_per_step"]))
    if missing:
        raise ConfigError(
            f"the warm-up uses batch sizes the sweep did not run ({missing}): no tuned learning rate or timing for them"
        )
    remainder = config.training.remainder
    phases = planned_phases(warmup, ref["budget_examples"], n, remainder)
    tuned = ref["settings"][phases[0].batch_size if rates else phases[-1].batch_size]
    if rates:
        lrs = rates(phases, tuned["learning_rate"])
    else:
        lrs = [ref["settings"][p.batch_size]["learning_rate"] for p in phases]
    others = {k: v for k, v in tuned.items() if k != "learning_rate"}
    timed = ref["seconds_per_step"]
    per_step = {p.batch_size: timed.get(p.batch_size) or interpolated(timed, p.batch_size) for p in phases}
    target = doc.config.target  # as the sweep resolved it
    key = "loss" if target.metric.endswith("loss") else "accuracy"
    evaluated = session.split(target.split)
    reached_examples = [e for e in ref["examples_to_target"] if e]
    every = every_examples or max(1, int(np.median(reached_examples)) // 64 if reached_examples else n // 64)
    values = dict(others)
    if "budget" in session.optimizer.values:
        values["budget"] = float(sum(p.steps for p in phases))
    per_seed = []
    for seed in seeds if seeds is not None else tuple(config.grid.seeds):
        state = session.fresh(seed, values)
        curve: list[list[float]] = []
        hit: dict[str, Any] = {}

        def on_eval(state, at, examples, curve=curve, hit=hit):
            value = float(session.evaluation(state, evaluated)(state, evaluated)[key])
            curve.append([at, examples, value])
            if not hit and (value >= target.value if target.higher_is_better else value <= target.value):
                hit.update(step=at, examples=examples)
            return not math.isfinite(value)  # a diverged run ends

        state, done = train_phases(
            state,
            session.step,
            session.train,
            phases,
            learning_rates=lrs,
            seed=seed,
            remainder=remainder,
            programs=session.programs,
            every_examples=every,
            callback=on_eval,
        )
        seconds = None
        if hit:
            left, seconds = hit["step"], 0.0
            for r in done:
                take = min(left, r.steps)
                seconds, left = seconds + take * per_step[r.batch_size], left - take
        if say:
            reached = f"target at step {hit['step']}" if hit else "target not reached"
            say(f"advise: warm-up check, seed {seed}: {reached}, {time.perf_counter() - start:.1f} s")
        per_seed.append(
            SeedRun(
                seed=seed,
                steps_to_target=hit.get("step"),
                examples_to_target=hit.get("examples"),
                seconds_to_target=seconds,
                final=curve[-1][2] if curve else None,
                curve=curve,
            )
        )
    comparisons = {}
    for name, log in (
        ("steps_to_target", True),
        ("seconds_to_target", True),
        ("examples_to_target", True),
        ("final", False),
    ):
        mine, theirs = _spread([getattr(s, name) for s in per_seed], log), _spread(ref[name], log)
        comparisons[name] = Comparison(warmup=mine, fixed=theirs)
        if log and mine.n and theirs.n:
            comparisons[name].ratio = mine.mean / theirs.mean
            ci = ratio_interval(tuple(mine.interval), tuple(theirs.interval))
            comparisons[name].ratio_interval = [v if math.isfinite(v) else None for v in ci]  # None: unbounded
    return WarmupCheck(
        phases=[
            records.Phase(batch_size=p.batch_size, steps=p.steps, learning_rate=lr)
            for p, lr in zip(phases, lrs, strict=True)
        ],
        other_hyperparameters=others,
        metric=target.metric,
        target=target.value,
        every_examples=every,
        budget_examples=ref["budget_examples"],
        seeds=per_seed,
        reference={k: v for k, v in ref.items() if k not in ("settings", "seconds_per_step")},
        higher_is_better=target.higher_is_better,
        seconds=time.perf_counter() - start,
        **comparisons,
    )
