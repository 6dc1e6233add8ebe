"""``jbatch advise``: the batch size (and a batch-size warm-up) for a workload on this device, from a
fraction of a sweep's cost.

Three measurements: seconds per step at every candidate batch size (``timing.time_steps``,
interleaved rounds); the local critical batch size ``B*`` and the noise scale ``B_simple``
along one short small-batch run (``branching``); nothing else. Then a prediction in McCandlish
et al.'s form, ``S(B) = S_min (1 + B_crit / B)``: relative to the trunk's batch size ``B0``,
``S(B) / S(B0) = (1 + B_crit / B) / (1 + B_crit / B0)`` and seconds ``T(B) = S(B) s(B)``, with
``B_crit`` the median ``B*`` over the later half of the checkpoints (the plateau Merrill et
al. 2025 see; a lower bound where the branches never fell out of tolerance). The
recommendation minimises ``T``; every other candidate is given as its predicted ``T`` over
the recommendation's. The warm-up schedule trains the examples the trunk spent between two
checkpoints at the largest candidate not above the smallest ``B*`` from the earlier one on
(``B0`` at least; so it never decreases), then the fixed recommendation or the last
checkpoint's B*, whichever is larger.

What it is checked against: ``against`` names a finished sweep of the same workload; the
advice then records the sweep's cost, its fastest batch sizes and, when the recommendation
is one of its batch sizes, the recommendation's measured seconds to target over the
fastest's (``jbatch.analysis.summary``).
"""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path
from typing import Any

import numpy as np

from jbatch.config import SweepConfig
from jbatch.core.batching import resolve_batch_size, steps_per_epoch
from jbatch.core.phases import Phase, train_phases
from jbatch.errors import ConfigError
from jbatch.results import SweepDocument, differences, read_sweep, records
from jbatch.results.records import AdviceCost, AdviceDocument, Against, StepTiming, SweepEstimate
from jbatch.sweeps.branching import BranchPlan, local_critical_batch, plan_checkpoints
from jbatch.sweeps.metadata import environment_metadata
from jbatch.sweeps.session import Session
from jbatch.sweeps.timing import step_timing, time_steps
from jbatch.workloads.workload import Workload

TIMED_EXAMPLES = 2048  # a timing round's steps at B: at most this many examples (and 4 to 32 steps)


def predicted_ratio(b: int, b0: int, b_crit: float) -> float:
    """``S(B) / S(B0)`` under ``S = S_min (1 + B_crit / B)``.

    Example:
      >>> predicted_ratio(64, 16, 16.0)  # (1 + 1/4) / (1 + 1)
      0.625
    """
    return (1 + b_crit / b) / (1 + b_crit / b0)


def recommend(seconds_per_step: dict[int, float], b0: int, b_crit: float) -> dict[str, Any]:
    """The batch size with the fewest predicted seconds to a target, and every candidate's
    predicted seconds over the recommendation's.

    Example:
      >>> r = recommend({16: 1.0, 64: 1.2, 256: 3.0}, 16, 50.0)  # steps x 1, 0.432, 0.290 of B = 16's
      >>> r["batch_size"], {b: round(v, 2) for b, v in r["relative_seconds"].items()}
      (64, {16: 1.93, 64: 1.0, 256: 1.68})
    """
    seconds = {b: predicted_ratio(b, b0, b_crit) * s for b, s in seconds_per_step.items()}
    best = min(seconds, key=seconds.__getitem__)
    return {
        "batch_size": best,
        "relative_steps": {b: predicted_ratio(b, b0, b_crit) for b in seconds},
        "relative_seconds": {b: seconds[b] / seconds[best] for b in seconds},
    }


def warmup_schedule(checkpoints: list[dict[str, Any]], sizes: list[int], b0: int, final: int) -> list[dict[str, int]]:
    """Phases over the trunk's span, never decreasing (a warm-up): between checkpoints ``i``
    and ``i + 1``, the largest candidate not above the smallest ``B*`` measured at ``i`` or
    later (at least ``b0``), for the examples the trunk spent there; then the largest of that,
    ``final`` and the last checkpoint's B* (its steps open: until the target), so the batch
    size goes on growing as B* did (Merrill et al.'s warm-up ends where B* plateaus).

    Example:
      >>> cps = [{"step": 0, "b_star_median": 16}, {"step": 100, "b_star_median": 256}, {"step": 1000,
      ...        "b_star_median": 64}]
      >>> warmup_schedule(cps, [16, 64, 256], 16, 256)  # 256 at step 100 is not kept: B* fell back to 64
      [{'batch_size': 16, 'steps': 100}, {'batch_size': 64, 'steps': 225}, {'batch_size': 256, 'steps': 0}]
      >>> warmup_schedule(cps, [16, 64, 256], 16, 64)  # then on at 64
      [{'batch_size': 16, 'steps': 100}, {'batch_size': 64, 'steps': 0}]
      >>> warmup_schedule(cps, [16, 64, 256], 16, 16)  # a smaller fixed pick: on at the last B* all the same
      [{'batch_size': 16, 'steps': 100}, {'batch_size': 64, 'steps': 0}]
    """
    phases = []
    for i, (here, nxt) in enumerate(zip(checkpoints, checkpoints[1:], strict=False)):
        floor = min(max(b0, e["b_star_median"]) for e in checkpoints[i:])
        b = max([s for s in sizes if s <= floor], default=b0)
        steps = (nxt["step"] - here["step"]) * b0 // b
        if phases and phases[-1]["batch_size"] == b:
            phases[-1]["steps"] += steps
        elif steps:
            phases.append({"batch_size": b, "steps": steps})
    plateau = max([s for s in sizes if s <= max(b0, checkpoints[-1]["b_star_median"])], default=b0)
    last = max([final, plateau] + [p["batch_size"] for p in phases])
    if phases and phases[-1]["batch_size"] == last:  # the open phase goes on at the same size
        phases.pop()
    phases.append({"batch_size": last, "steps": 0})
    return phases


def trunk_learning_rate(
    session: Session, fresh: Any, batch_size: int, steps: int, learning_rates: Any, seed: int
) -> tuple[float, dict[str, float | None]]:
    """The grid's learning rate of lowest held-out loss after the trunk's ``steps`` at
    ``batch_size`` (one seed): branches measure B* around a tuned small-batch run, as Merrill
    et al. do; the middle of a wide grid can be 10x too large (digits: 0.1 where B = 1's best is
    0.01) or diverge. ``fresh(seed, lr)`` is a new state; every rate shares one program (the
    session's). Returns the rate and every rate's loss (None: diverged)."""
    rates = sorted(float(v) for v in learning_rates)
    if len(rates) == 1:
        return rates[0], {}
    losses: dict[str, float | None] = {}
    for lr in rates:
        state, _ = train_phases(
            fresh(seed, lr),
            session.step,
            session.train,
            [Phase(batch_size, steps)],
            learning_rates=[lr],
            seed=seed,
            programs=session.programs,
        )
        loss = float(session.evaluation(state, session.test)(state, session.test)["loss"])
        losses[f"{lr:g}"] = loss if np.isfinite(loss) else None
    finite = {lr: losses[f"{lr:g}"] for lr in rates if losses[f"{lr:g}"] is not None}
    if not finite:
        raise ConfigError(
            f"every learning rate of the grid diverged in the trunk (B = {batch_size}, {steps} steps): "
            "give smaller --lrs or a larger --trunk-batch"
        )
    return min(finite, key=finite.__getitem__), losses


def sweep_estimate(config: SweepConfig, n: int, seconds_per_step: dict[int, float], cost: float) -> SweepEstimate:
    """What the full sweep this advice replaces would cost at least: every replica of its grid
    (learning rates x other swept values x seeds) trained for its budget at every candidate,
    at the measured seconds per step of one model (training only: no compilation, evaluation
    or probes, so a lower bound), and the advice's cost as a fraction of it.

    Example:
      >>> cfg = SweepConfig.of(learning_rates=(0.1, 1.0), seeds=(0,), budget_steps=100, budget_epochs=1)
      >>> e = sweep_estimate(cfg, 1000, {10: 0.01, 1000: 0.5}, 5.0)  # 2 x (100 x 0.01 + 100 x 0.5)
      >>> e.seconds, round(e.fraction, 4), e.basis
      (102.0, 0.049, 'training steps only (a lower bound)')
    """
    from jbatch.sweeps.grid import replica_grid

    replicas = len(replica_grid(config))
    remainder = config.training.remainder
    seconds = sum(
        replicas * config.budget.steps_at(steps_per_epoch(n, b, remainder)) * s for b, s in seconds_per_step.items()
    )
    return SweepEstimate(
        seconds=seconds, fraction=cost / seconds if seconds else None, basis="training steps only (a lower bound)"
    )


def default_rule(optimizer: str) -> str:
    """The learning-rate rule of a branch at ``k`` times the trunk's batch size: linear for SGD
    and momentum (the step is the gradient times the rate: k times the examples per step is
    k times the step, as long as B is below the noise scale; McCandlish et al. 2018), square
    root for Adam and the others (the update is normalised; Malladi et al. 2022).

    Example:
      >>> default_rule("sgd"), default_rule("adamw")
      ('linear', 'sqrt')
    """
    return "linear" if optimizer in ("sgd", "momentum") else "sqrt"


def check_against(directory: Path, config: SweepConfig) -> SweepDocument:
    """The finished sweep of ``directory``, refused (one line) when it is of another workload
    than ``config``'s (``results.differences``): checked before anything trains."""
    doc = read_sweep(directory)
    differ = differences(doc, config, target=False)
    if differ:
        raise ConfigError(
            f"{directory} is a sweep of another workload ({', '.join(differ)} differ): "
            "the advice can only be checked against its own workload's sweep"
        )
    return doc


def sweep_truth(directory: Path, recommended: int, doc: SweepDocument) -> Against:
    """What a finished sweep measured: its cost, its fastest set, and the recommendation's
    seconds to target over the fastest's (None where it did not time or reach it)."""
    from jbatch.analysis.stats import ratio_interval
    from jbatch.analysis.summary import summarize, sweep_fit, time_accounting
    from jbatch.analysis.tradeoff import interval_bounds

    summaries = summarize(doc)
    rows = [s["row"] for s in summaries]
    cost = sum((time_accounting(r) or {"wall": 0.0})["wall"] for r in doc.batch_sizes.values())
    cost += (doc.checks.seconds or 0.0) if doc.checks else 0.0  # as the sweep's "Sweep total"
    timed = {r["batch_size"]: r["seconds_to_target"]["mean"] for r in rows if r["seconds_to_target"]["n"]}
    fastest = min(timed, key=timed.__getitem__) if timed else None
    ratio = None if fastest is None or recommended not in timed else timed[recommended] / timed[fastest]
    intervals = {r["batch_size"]: r["seconds_to_target_interval"] for r in rows}
    ratio_ci = None
    if ratio is not None and intervals.get(recommended) and intervals.get(fastest):
        ratio_ci = list(ratio_interval(tuple(intervals[recommended]), tuple(intervals[fastest])))
    fit = sweep_fit(summaries)
    bounds = None if fit is None else interval_bounds(fit["interval"])
    return Against(
        directory=str(directory),
        seconds=cost,
        fastest=fastest,
        fastest_set=[r["batch_size"] for r in rows if r["fastest"]],
        seconds_to_target={str(b): v for b, v in timed.items()},
        recommended_over_fastest=ratio,
        recommended_over_fastest_interval=ratio_ci,
        b_crit=None if fit is None else fit["b_crit"],
        b_crit_interval=None if bounds is None else list(bounds),
    )


def advise(
    config: SweepConfig,
    wl: Workload,
    *,
    trunk_batch: int,
    trunk_steps: int,
    checkpoints: int = 4,
    examples: int | None = None,
    multipliers: tuple[int, ...] = (1, 2, 4, 8, 16, 32, 64),
    tolerance: float = 0.05,
    rule: str | None = None,
    lr_factors: tuple[float, ...] = (1.0, 0.5, 0.25),
    timing_rounds: int = 7,
    against: Path | None = None,
    swept: SweepDocument | None = None,
    check: bool = True,
    session: Session | None = None,
) -> AdviceDocument:
    """Runs the advice (see the module's docstring) on ``config``'s candidate batch sizes and
    seeds; the trunk's learning rate is ``trunk_learning_rate``'s pick from ``config``'s
    grid; the branches' learning rates follow ``rule``, by default ``default_rule``.
    Returns the advice document. With ``against`` (the sweep's directory; ``swept`` its
    document, already loaded and checked: ``check_against``) and ``check``, the warm-up
    schedule is then trained to the sweep's target on every seed and set beside the
    sweep's fastest batch size (``warmup_check``); its time is not the advice's cost.
    ``session``: one to share compiled programs with (a sweep's, in the same process)."""
    start = time.perf_counter()
    if against is not None and swept is None:
        swept = check_against(Path(against), config)  # before anything trains
    session = session or Session.open(config, wl)
    n = wl.data.num_train
    sizes = sorted({resolve_batch_size(b, n) for b in config.grid.batch_sizes})
    b0 = resolve_batch_size(trunk_batch, n)
    rule = rule or default_rule(config.workload.optimizer)
    multipliers = tuple(k for k in multipliers if k * b0 <= max(sizes)) or (1,)  # B* above every candidate: moot
    examples = examples or 4 * b0 * max(multipliers)
    checkpoint_steps = plan_checkpoints(trunk_steps, checkpoints)
    values: dict[str, float] = {}
    if "budget" in session.optimizer.values:  # a schedule (cosine): it spans the sweep's budget at the trunk's size
        values["budget"] = float(config.budget.steps_at(steps_per_epoch(n, b0, config.training.remainder)))

    def fresh(seed: int, lr: float):
        return session.fresh(seed, {**values, "learning_rate": lr})

    plan = BranchPlan(
        batch_size=b0,
        learning_rate=0.0,  # the trunk's, once its search has run
        checkpoints=checkpoint_steps,
        examples=examples,
        multipliers=multipliers,
        tolerance=tolerance,
        rule=rule,
        seeds=tuple(config.grid.seeds),
        lr_factors=tuple(lr_factors),
    )
    plan.check(n)  # before anything trains
    t_bracket = time.perf_counter()
    lr, bracket = trunk_learning_rate(
        session, fresh, b0, trunk_steps, config.grid.learning_rates, seed=config.grid.seeds[0]
    )
    bracket_seconds = time.perf_counter() - t_bracket
    plan = dataclasses.replace(plan, learning_rate=lr)

    t0 = time.perf_counter()
    timed = time_steps(
        session,
        sizes,
        timing_rounds,
        max_steps={b: max(4, min(32, TIMED_EXAMPLES // b)) for b in sizes},
        init=lambda: fresh(0, lr),
    )
    timing = {b: step_timing(timed[b]) for b in sizes}
    t1 = time.perf_counter()
    branched = local_critical_batch(session, lambda seed: fresh(seed, lr), plan)
    t2 = time.perf_counter()
    later = branched.checkpoints[len(branched.checkpoints) // 2 :]
    b_crit = float(np.median([e.b_star_median for e in later]))
    censored = any(e.censored_median for e in later)
    b_simple = float(
        np.exp(
            np.mean(np.log([max(e.b_simple_median, 1e-12) for e in branched.checkpoints[1:] or branched.checkpoints]))
        )
    )
    per_step = {b: timing[b].seconds_per_step for b in sizes}
    rec = recommend(per_step, b0, b_crit)
    total = time.perf_counter() - start
    doc = AdviceDocument(
        config=config,
        candidates=sizes,
        trunk_batch=b0,
        learning_rate=lr,
        timing={
            str(b): StepTiming(
                seconds_per_step=t.seconds_per_step,
                seconds_per_step_interval=t.seconds_per_step_interval,
                seconds_per_epoch=t.seconds_per_epoch,
                rounds=t.rounds,
                timed_steps=t.timed_steps,
            )
            for b, t in timing.items()
        },
        branching=branched,
        b_crit=b_crit,
        b_crit_censored=censored,
        b_simple_along_training=b_simple,
        recommended=rec["batch_size"],
        relative_steps={str(b): v for b, v in rec["relative_steps"].items()},
        relative_seconds={str(b): v for b, v in rec["relative_seconds"].items()},
        warmup=[
            records.Phase(**p)
            for p in warmup_schedule(
                [{"step": e.step, "b_star_median": e.b_star_median} for e in branched.checkpoints],
                sizes,
                b0,
                rec["batch_size"],
            )
        ],
        trunk_learning_rates=bracket,
        cost=AdviceCost(learning_rate=bracket_seconds, timing=t1 - t0, branching=t2 - t1, total=total),
        metadata=environment_metadata(),  # the machine and software it was measured on
        sweep_estimate=sweep_estimate(config, n, per_step, total),
    )
    if against is not None:
        truth = sweep_truth(Path(against), rec["batch_size"], swept)
        truth.cost_fraction = total / truth.seconds if truth.seconds else None
        doc.against = truth
        if check:
            from jbatch.sweeps.warmup_check import check_warmup

            doc.warmup_check = check_warmup(session, swept, doc.warmup)
    return doc
