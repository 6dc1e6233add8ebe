"""``jbatch advise``: the batch size (and a batch-size warm-up) for a workload on this device, from a
fraction of a sweep's cost.

Three measurements: seconds per step at every candidate batch size (``timing.time_steps``,
interleaved rounds); the local critical batch size ``B*`` and the noise scale ``B_simple``
along one short small-batch run (``branching``); nothing else. Then a prediction in McCandlish
et al.'s form, ``S(B) = S_min (1 + B_crit / B)``: relative to the trunk's batch size ``B0``,
``S(B) / S(B0) = (1 + B_crit / B) / (1 + B_crit / B0)`` and seconds ``T(B) = S(B) s(B)``, with
``B_crit`` the ``B*`` of the last checkpoint (median over seeds): B* grows along training
(Merrill et al. 2025) and the trunk spans only the start of a run to the target, so the last
checkpoint is the nearest to where a run spends its steps (the median over the later half
read 40 on digits, where the sweep's fastest is 64 and its fit 119); a lower bound where the
branches never fell out of tolerance up to the largest candidate. The recommendation is
``pick.decide``'s: the candidates whose predicted ``T`` the timing intervals cannot tell apart
from the best's, then of them the fewest predicted steps; every other candidate is given as
its predicted ``T`` over the recommendation's. The warm-up schedule trains the examples the trunk spent between two
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
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from jbatch.analysis.finders import machine
from jbatch.config import SweepConfig
from jbatch.core.batching import resolve_batch_size, steps_per_epoch
from jbatch.core.phases import Phase, train_phases
from jbatch.errors import ConfigError
from jbatch.results import SweepDocument, differences, read_sweep, records
from jbatch.results.records import AdviceCost, AdviceDocument, Against, Branching, StepTiming, SweepEstimate
from jbatch.sweeps.branching import BranchPlan, local_critical_batch, plan_checkpoints
from jbatch.sweeps.fits import probe
from jbatch.sweeps.metadata import environment_metadata
from jbatch.sweeps.pick import decide
from jbatch.sweeps.session import Session
from jbatch.sweeps.timing import step_timing, time_steps
from jbatch.workloads.workload import Workload

TIMED_EXAMPLES = 1024  # a timing round's steps at B: at most this many examples (and 4 to 32 steps)
TRUNK_EXTENSION = 4  # a trunk that has not learned in its steps is searched and run this many times longer, once


def predicted_ratio(b: int, b0: int, b_crit: float) -> float:
    """``S(B) / S(B0)`` under ``S = S_min (1 + B_crit / B)``.

    Examples:
      >>> predicted_ratio(64, 16, 16.0)  # (1 + 1/4) / (1 + 1)
      0.625
    """
    return (1 + b_crit / b) / (1 + b_crit / b0)


def warmup_schedule(checkpoints: list[dict[str, Any]], sizes: list[int], b0: int, final: int) -> list[dict[str, int]]:
    """Phases over the trunk's span, never decreasing (a warm-up): between checkpoints ``i``
    and ``i + 1``, the largest candidate not above the smallest ``B*`` measured at ``i`` or
    later (at least ``b0``), for the examples the trunk spent there; then the largest of that,
    ``final`` and the last checkpoint's B* (its steps open: until the target), so the batch
    size goes on growing as B* did (Merrill et al.'s warm-up ends where B* plateaus).

    Examples:
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
    for i, b in enumerate(segment_sizes(checkpoints, sizes, b0)):
        steps = (checkpoints[i + 1]["step"] - checkpoints[i]["step"]) * b0 // b
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


def segment_sizes(
    checkpoints: list[dict[str, Any]], sizes: list[int], b0: int, key: str = "b_star_median"
) -> list[int]:
    """The warm-up's batch size between each checkpoint and the next: the largest candidate not
    above the smallest B* (``key``) measured there or later, ``b0`` at least.

    Examples:
      >>> segment_sizes([{"step": 0, "b_star_median": 16}, {"step": 100, "b_star_median": 256},
      ...                {"step": 1000, "b_star_median": 64}], [16, 64, 256], 16)
      [16, 64]
    """
    out = []
    for i in range(len(checkpoints) - 1):
        floor = min(max(b0, e[key]) for e in checkpoints[i:])
        out.append(max([s for s in sizes if s <= floor], default=b0))
    return out


def warmup_prediction(
    checkpoints: list[dict[str, Any]], sizes: list[int], b0: int, fixed: int, per_step: dict[int, float]
) -> list[float]:
    """Per seed, the warm-up's predicted seconds over the trunk's span over the fixed batch
    size's: each segment between checkpoints ``i`` and ``i + 1`` takes the trunk's steps there
    times ``predicted_ratio`` at the seed's own B* of checkpoint ``i`` (the local critical batch
    size), times the seconds per step, for the warm-up's size there (``segment_sizes`` of that
    seed's B*) and for ``fixed``. Below 1 on every seed: the branches say the warm-up helps.

    Examples:
      >>> cps = [{"step": 0, "b_star": {"0": 1}}, {"step": 100, "b_star": {"0": 64}}, {"step": 1000,
      ...        "b_star": {"0": 64}}]
      >>> [round(r, 3) for r in warmup_prediction(cps, [1, 64], 1, 64, {1: 1.0, 64: 2.0})]  # 1% off: a tie
      [0.99]
      >>> [round(r, 3) for r in warmup_prediction(cps, [1, 64], 1, 64, {1: 0.1, 64: 2.0})]  # B = 1 cheap early
      [0.417]
    """
    seeds = list(checkpoints[0]["b_star"])
    out = []
    for seed in seeds:
        local = [{"step": e["step"], "b": e["b_star"][seed]} for e in checkpoints]
        ours = segment_sizes(local, sizes, b0, key="b")
        warm = fixed_total = 0.0
        for i, b in enumerate(ours):
            span, local_crit = local[i + 1]["step"] - local[i]["step"], local[i]["b"]
            warm += span * predicted_ratio(b, b0, local_crit) * per_step[b]
            fixed_total += span * predicted_ratio(fixed, b0, local_crit) * per_step[fixed]
        out.append(warm / fixed_total if fixed_total else 1.0)
    return out


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

    Examples:
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

    Examples:
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
        ratio_ci = [v if np.isfinite(v) else None for v in ratio_interval(intervals[recommended], intervals[fastest])]
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
        b_crit_interval=None if bounds is None else [v if np.isfinite(v) else None for v in bounds],
        seconds_to_target_interval={
            str(b): [v if np.isfinite(v) else None for v in ci] for b, ci in intervals.items() if ci
        },
        steps_to_target={str(r["batch_size"]): r["steps_to_target"]["mean"] for r in rows if r["steps_to_target"]["n"]},
        reached={str(r["batch_size"]): [r["reached"], r["seeds"]] for r in rows},
        samples_per_second={str(r["batch_size"]): r["samples_per_second"] for r in rows if r["samples_per_second"]},
        machine=machine(doc.metadata),
    )


def trunk_learned(branched: Branching) -> bool:
    """Whether the trunk learned before B* was read from it: its held-out loss (median over
    seeds) fell from step 0 to the last checkpoint by more than the last checkpoint's tolerance
    (relative). A trunk that did not moves no more than its branches' noise, so every branch
    is within tolerance and B* reads the largest size tried (noise, not a measurement).
    True when there is no step-0 checkpoint to compare with."""
    first, last = branched.checkpoints[0], branched.checkpoints[-1]
    if first.step != 0 or len(branched.checkpoints) < 2:
        return True
    l0, l1 = (float(np.median([v for v in e.loss.values() if v is not None])) for e in (first, last))
    tolerance = last.tolerance if last.tolerance is not None else branched.plan.tolerance
    return l0 - l1 > tolerance * abs(l0)


def interval_verdict(ratios: list[float], what: str) -> tuple[bool, str]:
    """Whether a schedule whose predicted seconds over the fixed pick's are ``ratios`` (per
    seed) is advised, and why: only when the 95% interval over seeds of their mean lies below 1
    (``stats.mean_interval``: the seeds' spread is the prediction's uncertainty, and a gain
    inside it is no gain; one seed has no interval, so it cannot show one). ``what``: the
    ratio's unit, for the reason."""
    from jbatch.analysis.stats import mean_interval

    lo, hi = mean_interval(ratios)
    shown = f"{np.mean(ratios):.3g} [{lo:.3g}, {hi:.3g}] {what}"
    if hi < 1:
        return True, f"predicted faster beyond the seeds' spread: {shown}"
    return False, f"no gain beyond the seeds' spread: {shown}"


def warmup_verdict(
    branched: Branching, sizes: list[int], fixed: int, per_step: dict[int, float], phases: list[dict[str, int]]
) -> tuple[bool, str, list[float]]:
    """Whether the warm-up is advised, why (or why not), and its predicted seconds over the
    fixed pick's per seed (``warmup_prediction``): never when it is the fixed size alone, else
    ``interval_verdict``'s."""
    if len(phases) == 1 and phases[0]["batch_size"] == fixed:
        return False, f"the schedule the branches give is the fixed B = {fixed} throughout", []
    cps = [{"step": e.step, "b_star": e.b_star} for e in branched.checkpoints]
    ratios = warmup_prediction(cps, sizes, branched.plan.batch_size, fixed, per_step)
    advised, reason = interval_verdict(ratios, f"of fixed B = {fixed}'s seconds over the trunk's span")
    return advised, reason, ratios


def seesaw_candidate(
    config: SweepConfig, n: int, fixed: int, sizes: list[int], per_step: dict[int, float], b_stars: list[float]
) -> records.ScheduleCandidate:
    """Seesaw on the fixed pick's run (``sweeps.seesaw``): its phases over the sweep's budget at
    ``fixed`` with the sweep's schedule, batch sizes up to the largest candidate (and the
    data), its prediction at the seeds' last B* (``b_stars``) and ``interval_verdict``'s."""
    from jbatch.sweeps import seesaw

    t = config.training
    steps = config.budget.steps_at(steps_per_epoch(n, fixed, t.remainder))
    phases = seesaw.seesaw_phases(fixed, steps, min(max(sizes), n), t.schedule, t.warmup, t.final_fraction)
    if len(phases) == 1:
        why = (
            "the schedule never halves the learning rate"
            if not seesaw.halvings(t.schedule, t.warmup, t.final_fraction)
            else "B is already the largest candidate"
        )
        return records.ScheduleCandidate(name="seesaw", phases=phases, reason=f"{why}: Seesaw is the fixed B = {fixed}")
    ratios = seesaw.prediction(phases, steps, b_stars, per_step, predicted_ratio)
    advised, reason = interval_verdict(ratios, f"of fixed B = {fixed}'s seconds over its budget of {steps} steps")
    return records.ScheduleCandidate(name="seesaw", phases=phases, advised=advised, reason=reason, predicted=ratios)


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
    say: Callable[[str], None] | None = None,
    memory_cap: float | None = None,
) -> AdviceDocument:
    """Runs the advice (see the module's docstring) on ``config``'s candidate batch sizes and
    seeds; the trunk's learning rate is ``trunk_learning_rate``'s pick from ``config``'s
    grid; the branches' learning rates follow ``rule``, by default ``default_rule``; B* is
    read up to the largest candidate (``BranchPlan.ceiling``). When no rate of the trunk's
    search lowered the held-out loss by more than ``tolerance``, the search and the trunk are
    run ``TRUNK_EXTENSION`` times longer, once; a branched trunk that still has not learned
    (``trunk_learned``) is said in the document. The recommendation is ``pick.decide``'s. Returns the advice document.
    With ``against`` (the sweep's directory; ``swept`` its document, already loaded and
    checked: ``check_against``) and ``check``, the warm-up schedule is then trained to the
    sweep's target on every seed and set beside the sweep's fastest batch size
    (``warmup_check``; its time is not the advice's cost); found worse, it is not advised.
    ``session``: one to share compiled programs with (a sweep's, in the same process).
    ``say``: called with a line at each phase, checkpoint and branch round (progress).
    ``memory_cap``: bytes, the stated capacity on a CPU (``sweeps.fits``; on an accelerator
    its memory is probed): candidates that do not fit are neither timed nor recommended."""
    say = say or (lambda line: None)
    start = time.perf_counter()
    if against is not None and swept is None:
        swept = check_against(Path(against), config)  # before anything trains
    if memory_cap is not None and not (np.isfinite(memory_cap) and memory_cap > 0):
        raise ConfigError(f"the memory cap must be a positive number of bytes, got {memory_cap}")
    session = session or Session.open(config, wl)
    n = wl.data.num_train
    sizes = sorted({resolve_batch_size(b, n) for b in config.grid.batch_sizes})
    b0 = resolve_batch_size(trunk_batch, n)
    fits = probe(session, sizes, capacity=memory_cap)
    if fits.largest is None or fits.largest < b0:
        raise ConfigError(
            f"the trunk's batch size {b0} does not fit in memory ({fits.method}: largest that fits {fits.largest})"
        )
    if any(b > fits.largest for b in sizes):
        say(f"advise: {fits.method}: the largest batch that fits is {fits.largest}; above it not timed")
        sizes = [b for b in sizes if b <= fits.largest]
    rule = rule or default_rule(config.workload.optimizer)
    multipliers = tuple(k for k in multipliers if k * b0 <= max(sizes)) or (1,)  # B* above every candidate: moot
    values: dict[str, float] = {}
    if "budget" in session.optimizer.values:  # a schedule (cosine): it spans the sweep's budget at the trunk's size
        values["budget"] = float(config.budget.steps_at(steps_per_epoch(n, b0, config.training.remainder)))

    def fresh(seed: int, lr: float):
        return session.fresh(seed, {**values, "learning_rate": lr})

    plan = BranchPlan(
        batch_size=b0,
        learning_rate=0.0,  # the trunk's, once its search has run
        checkpoints=plan_checkpoints(trunk_steps, checkpoints),
        examples=examples or 4 * b0 * max(multipliers),
        multipliers=multipliers,
        tolerance=tolerance,
        rule=rule,
        seeds=tuple(config.grid.seeds),
        lr_factors=tuple(lr_factors),
        ceiling=max(sizes),
    )
    plan.check(n)  # before anything trains
    t_bracket = time.perf_counter()
    lr, bracket, plan = searched_trunk(session, fresh, plan, config.grid.learning_rates, say)
    bracket_seconds = time.perf_counter() - t_bracket
    t1 = time.perf_counter()
    plan = dataclasses.replace(plan, learning_rate=lr)
    branched = local_critical_batch(session, lambda seed: fresh(seed, lr), plan, on_checkpoint=_progress(plan, say))
    learned = trunk_learned(branched)
    t2 = time.perf_counter()
    last = branched.checkpoints[-1]
    b_crit = float(last.b_star_median)
    b_simple = float(
        np.exp(
            np.mean(np.log([max(e.b_simple_median, 1e-12) for e in branched.checkpoints[1:] or branched.checkpoints]))
        )
    )
    relative_steps = {b: predicted_ratio(b, b0, b_crit) for b in sizes}
    seeds_b = list(last.b_star.values())  # the seeds' own B*: the predicted steps' range
    steps_range = {
        b: (min(predicted_ratio(b, b0, x) for x in seeds_b), max(predicted_ratio(b, b0, x) for x in seeds_b))
        for b in sizes
    }
    say(f"advise: B_crit {b_crit:g}; timing {len(sizes)} batch sizes, {timing_rounds} interleaved rounds")
    decided, timing = timed_pick(session, sizes, timing_rounds, lambda: fresh(0, lr), relative_steps, steps_range)
    t3 = time.perf_counter()
    rec = int(decided["batch_size"])
    per_step = {b: timing[b].seconds_per_step for b in sizes}
    predicted = decided["predicted"]
    phases = warmup_schedule(
        [{"step": e.step, "b_star_median": e.b_star_median} for e in branched.checkpoints], sizes, b0, rec
    )
    advised, reason, ratios = warmup_verdict(branched, sizes, rec, per_step, phases)
    seesaw = seesaw_candidate(config, n, rec, sizes, per_step, seeds_b)
    if not learned:
        advised, reason = False, "the trunk never learned beyond its noise: B* along it is noise"
        seesaw.advised, seesaw.reason = False, reason
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
        b_crit_censored=last.censored_median,
        b_simple_along_training=b_simple,
        recommended=rec,
        relative_steps={str(b): v for b, v in relative_steps.items()},
        relative_seconds={str(b): predicted[b][0] / predicted[rec][0] for b in sizes},
        recommended_set=list(decided["set"]),
        retimed=int(decided["retimed"]),
        trunk_learned=learned,
        warmup=[records.Phase(**p) for p in phases],
        warmup_advised=advised,
        warmup_reason=reason,
        warmup_predicted=ratios,
        seesaw=seesaw,
        trunk_learning_rates=bracket,
        cost=AdviceCost(
            learning_rate=bracket_seconds, timing=t3 - t2, branching=t2 - t1, total=total, memory=fits.seconds
        ),
        fits=fits,
        metadata=environment_metadata(),  # the machine and software it was measured on
        sweep_estimate=sweep_estimate(config, n, per_step, total),
    )
    say(f"advise: recommended B = {rec} (set {list(decided['set'])}), {total:.1f} s")
    if against is not None:
        truth = sweep_truth(Path(against), rec, swept)
        truth.cost_fraction = total / truth.seconds if truth.seconds else None
        doc.against = truth
        if check:
            check_schedules(doc, session, swept, say)
    return doc


def check_schedules(doc: AdviceDocument, session: Session, swept: SweepDocument, say: Callable[[str], None]) -> None:
    """Trains the advice's schedules to the sweep ``swept``'s target (``warmup_check``; their time
    is not the advice's cost): the warm-up when it has more than one size, Seesaw when it was
    predicted faster (at its own learning rates, ``seesaw.rates``); then ``apply_check``."""
    from jbatch.sweeps.seesaw import rates
    from jbatch.sweeps.warmup_check import check_warmup

    if len(doc.warmup) > 1:  # a schedule of one size is no warm-up: nothing to check
        say(f"advise: checking the warm-up against {doc.against.directory} (not the advice's cost)")
        doc.warmup_check = check_warmup(session, swept, doc.warmup, say=say)
    if doc.seesaw and doc.seesaw.advised:
        t = doc.config.training
        say(f"advise: checking Seesaw against {doc.against.directory} (not the advice's cost)")
        doc.seesaw.check = check_warmup(
            session,
            swept,
            doc.seesaw.phases,
            say=say,
            rates=lambda ps, lr: rates(ps, lr, t.schedule, t.warmup, t.final_fraction),
        )
    apply_check(doc)


def searched_trunk(
    session: Session, fresh: Callable[[int, float], Any], plan: BranchPlan, rates: Any, say: Callable[[str], None]
) -> tuple[float, dict[str, float | None], BranchPlan]:
    """The trunk's learning rate (``trunk_learning_rate`` over ``rates``, on the plan's first
    seed), searched again over a trunk ``TRUNK_EXTENSION`` times longer, once, when no rate
    lowered the held-out loss by more than the plan's tolerance (B* along a trunk that has
    not learned would be noise). Returns the rate, every rate's loss and the plan with the
    trunk's checkpoints (longer, if it was extended)."""
    steps, seed = plan.checkpoints[-1], plan.seeds[0]
    say(f"advise: the trunk's learning rate, {len(rates)} rates x {steps} steps at B = {plan.batch_size}")
    lr, losses = trunk_learning_rate(session, fresh, plan.batch_size, steps, rates, seed=seed)
    state = fresh(seed, lr)
    initial = float(session.evaluation(state, session.test)(state, session.test)["loss"])
    searched = [v for v in losses.values() if v is not None]  # none: one rate, not searched
    if searched and not initial - min(searched) > plan.tolerance * abs(initial):
        say(
            f"advise: the trunk's held-out loss did not fall beyond {plan.tolerance:g} of {initial:.4g} in "
            f"{steps} steps: searching again over a trunk of {TRUNK_EXTENSION * steps}"
        )
        steps *= TRUNK_EXTENSION
        lr, losses = trunk_learning_rate(session, fresh, plan.batch_size, steps, rates, seed=seed)
        plan = dataclasses.replace(plan, checkpoints=plan_checkpoints(steps, len(plan.checkpoints)))
    return lr, losses, plan


def timed_pick(
    session: Session,
    sizes: list[int],
    rounds: int,
    init: Callable[[], Any],
    relative_steps: dict[int, float],
    steps_range: dict[int, tuple[float, float]] | None = None,
) -> tuple[dict[str, Any], dict[int, Any]]:
    """``pick.decide`` on the session's timing rounds (``timing.time_steps``: at most
    ``TIMED_EXAMPLES`` examples and 4 to 32 steps a round; the recommended set re-timed with
    the same rounds, every round kept). Returns the decision and each size's ``Timing``."""
    raw: dict[int, dict[str, Any]] = {}

    def measure(contenders: list[int]) -> dict[int, list[float]]:
        cap = {b: max(4, min(32, TIMED_EXAMPLES // b)) for b in contenders}
        timed = time_steps(session, contenders, rounds, max_steps=cap, init=init)
        for b, t in timed.items():
            if b in raw:
                raw[b]["epoch_seconds"] += t["epoch_seconds"]
            else:
                raw[b] = t
        return {b: [s / t["timed_steps"] for s in t["epoch_seconds"]] for b, t in timed.items()}

    decided = decide(measure, sizes, relative_steps, steps_range=steps_range)
    return decided, {b: step_timing(raw[b]) for b in sizes}


def apply_check(doc: AdviceDocument) -> None:
    """The checks overrule the predictions: a warm-up or Seesaw that its check against the
    sweep found worse (``report.advice.found_worse``) is not advised, and the reason says so."""
    from jbatch.report.advice import found_worse

    if doc.warmup_check and (reason := found_worse(doc.warmup_check)):
        doc.warmup_advised, doc.warmup_reason = False, reason
    if doc.seesaw and doc.seesaw.check and (reason := found_worse(doc.seesaw.check)):
        doc.seesaw.advised, doc.seesaw.reason = False, reason


def _progress(plan: BranchPlan, say: Callable[[str], None]) -> Callable[[dict[str, Any]], None]:
    """A line per seed's checkpoint branched (with the ETA of the branching) and per extension round."""
    todo, clock, done = len(plan.seeds) * len(plan.checkpoints), time.perf_counter(), [0]

    def report(entry: dict[str, Any]) -> None:
        if "extension" in entry:
            ext = entry["extension"]
            say(
                f"advise: checkpoint {entry['checkpoint'] + 1}: B* censored, branches up to "
                f"{ext['batch_sizes'][-1]} ({ext['examples']} examples each): B* {ext['b_star_median']:g}"
            )
            return
        done[0] += 1
        elapsed = time.perf_counter() - clock
        say(
            f"advise: seed {entry['seed']}, checkpoint {entry['checkpoint'] + 1}/{len(plan.checkpoints)} "
            f"(trunk step {entry['step']}): {done[0]}/{todo} branched, {elapsed:.1f} s, "
            f"ETA {elapsed / done[0] * (todo - done[0]):.0f} s"
        )

    return report
