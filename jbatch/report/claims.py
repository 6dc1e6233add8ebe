"""Verdicts on the tutorial's claims C1-C11, computed from sweep JSON documents alone.

Each claim gets a verdict (holds / does not hold / holds only when ...), the numbers
behind it and the plot that shows it. Every verdict comes from a measurement that could
have come out the other way: C1 and C6 from what the compiled program counted (examples
in each epoch's loss counts, updates on each replica's step counter), C11 from compiling
a plain ``jax.jit`` step on unpadded batches next to jbatch's padded epoch, oscillation
from the training loss on a fixed sample of rows at every fine point (about 100 per run
at every batch size; no sampling noise: a model that does not train does not oscillate,
where the mini-batch losses of an untrained model go uphill half the time). The thresholds are named
below with their reasons. The first document is the primary workload; C10 compares all.
``jbatch claims`` writes ``results/claims.md``.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from jbatch.analysis.selection import best_replicas, counted_examples
from jbatch.analysis.stats import mean_interval
from jbatch.analysis.summary import best_steps, fastest, noise_averaged, summarize, sweep_fit
from jbatch.analysis.tradeoff import interval_bounds
from jbatch.report import table
from jbatch.report.table import interval_text
from jbatch.results import SweepDocument, differences, load, read_sweep
from jbatch.results.records import AdviceDocument, BatchSizeResult, ShapeDemoDocument
from jbatch.store import write_text

Verdict = tuple[str, str, str]  # (verdict, numbers, plot)

# Timings are compared through their 95% intervals (``jbatch.analysis.stats``): one is cheaper or
# faster than another only when their intervals do not overlap. "The fastest batch size" is
# the set whose seconds-to-target intervals overlap the fastest one's (``summary.fastest``).
# Oscillation differs when the gap exceeds twice the larger seed standard deviation (the
# statistic's own noise), and at least 0.02 (a floor for a spread measured on few seeds).
OSCILLATION_FLOOR = 0.02
# Overfitting: the final test loss exceeds its minimum by more than 5%, well above the
# evaluation-to-evaluation wobble of a converged run's test loss (about 1%).
OVERFIT_RISE = 0.05
# Diminishing returns above B_crit: x times the batch buys fewer than x/4 times fewer steps
# (perfect scaling would give x; the fitted hyperbola gives about 2 at x = B / B_crit = 4).
RETURNS = 4.0
# O3's power: the runs must outlast this many half-lives of the default beta2.
POWER = 2.0
# McCandlish et al. (2018) predict B_crit ~ the noise scale B_simple averaged along training,
# for SGD; their own measurements scatter by about 2x around it, so it holds when the ratio's
# interval (B_crit's bootstrap interval over the averaged B_simple) reaches into [1/2, 2].
NOISE_FACTOR = 2.0


class Sweep:
    """One sweep document with its per-batch-size summaries and trade-off fit."""

    def __init__(self, directory: Path, doc: SweepDocument):
        self.directory, self.doc = directory, doc
        self.rows = summarize(doc)
        self.fit = sweep_fit(self.rows)
        self.fastest = fastest(self.rows)
        self.n = doc.num_train

    @property
    def name(self) -> str:
        return self.doc.name

    @property
    def config(self):
        return self.doc.config

    def result(self, b: int) -> BatchSizeResult:
        return self.doc.result(b)

    def row(self, b: int) -> dict[str, Any]:
        return next(s["row"] for s in self.rows if s["row"]["batch_size"] == b)

    @property
    def sizes(self) -> list[int]:
        return [s["row"]["batch_size"] for s in self.rows]

    def plot(self, name: str) -> str:
        return f"[{name}]({self.directory.name}/{name})"

    def oscillation(self, b: int) -> tuple[float, float]:
        """Mean and sample std over seeds of the objective's oscillation at the best
        setting (``selection.oscillation``: the share of the fixed training sample's loss
        movement that goes uphill; 0: it only falls, 0.5: as much up as down); NaN where it
        was not measured."""
        s = next(x for x in self.rows if x["row"]["batch_size"] == b)
        v = [
            r["oscillation"]
            for r in best_replicas(s["replicas"], s["row"])
            if not r["diverged"] and r["oscillation"] is not None
        ]
        if not v:
            return math.nan, math.nan
        return float(np.mean(v)), float(np.std(v, ddof=1)) if len(v) > 1 else 0.0

    def mean(self, b: int, key: str) -> float | None:
        return self.row(b)[key]["mean"]

    def seconds_per_step(self, b: int) -> float:
        return self.result(b).timing.seconds_per_step

    def step_interval(self, b: int) -> tuple[float, float]:
        return tuple(self.result(b).timing.seconds_per_step_interval)

    def cheaper(self, a: int, b: int, per: str = "step") -> bool:
        """Whether ``a``'s seconds per step (or per epoch) are below ``b``'s, intervals apart."""
        scale = (lambda x: self.result(x).steps_per_epoch) if per == "epoch" else (lambda x: 1)
        return self.step_interval(a)[1] * scale(a) < self.step_interval(b)[0] * scale(b)


def _g(v: float | None) -> str:
    return table.num(v, 3)


def _differ(a: tuple[float, float], b: tuple[float, float]) -> bool:
    """Whether oscillation ``a`` exceeds ``b`` beyond the seeds' noise (``OSCILLATION_FLOOR``)."""
    return a[0] - b[0] > max(2 * max(a[1], b[1]), OSCILLATION_FLOOR)


def _osc(v: tuple[float, float]) -> str:
    return table.spread(v[0], v[1])


def c1(s: Sweep) -> Verdict:
    counted = {b: counted_examples(s.result(b)) for b in s.sizes}
    short = {b: sorted(set(v) - {s.n}) for b, v in counted.items() if any(x != s.n for x in v)}
    nums = (
        f"examples in each epoch as the compiled program counted them (sum of its losses' counts), N={s.n}: "
        + ", ".join(
            f"B={b}: {'all ' + str(s.n) if b not in short else short[b]} over {len(v)} epochs"
            for b, v in counted.items()
        )
    )
    if not short:
        return "holds: every epoch used every training example", nums, s.plot("loss_curves.png")
    return (
        (
            f"does not hold: epochs used fewer than N examples at B={sorted(short)} (remainder "
            f"{s.config.training.remainder!r})"
        ),
        nums,
        s.plot("loss_curves.png"),
    )


def c2(s: Sweep) -> Verdict:
    epochs = {b: s.mean(b, "epochs_to_target") for b in s.sizes}
    enough = [b for b, e in epochs.items() if e is not None and e <= 1]
    more = [b for b, e in epochs.items() if e is None or e > 1]
    nums = ", ".join(f"B={b}: {_g(e)}" for b, e in epochs.items())
    if not enough:
        verdict = "holds"
    elif not more:
        verdict = "does not hold: one epoch reaches the target at every batch size"
    else:
        verdict = f"holds only when B >= {min(more)}: at B <= {max(enough)} one epoch already reaches the target"
    return verdict, f"epochs to target at the best learning rate: {nums}", s.plot("loss_curves.png")


def _secs(s: Sweep) -> str:
    return ", ".join(
        f"B={b}: {_g(s.mean(b, 'seconds_to_target'))} {table.interval(*iv)}"
        if (iv := s.row(b)["seconds_to_target_interval"])
        else f"B={b}: -"
        for b in s.sizes
    )


def c3(s: Sweep) -> Verdict:
    full = s.n
    if full not in s.sizes:
        return "not measured (no full-batch run)", "-", "-"
    b1 = min(s.sizes)
    expensive = s.cheaper(b1, full)
    slow = bool(s.fastest) and full not in s.fastest
    nums = (
        f"one full-batch update costs {_g(s.seconds_per_step(full) * 1e3)} ms "
        f"{table.interval(*(1e3 * x for x in s.step_interval(full)))}, "
        f"{_g(s.seconds_per_step(full) / s.seconds_per_step(b1))}x a B={b1} update; seconds to target (95% "
        f"intervals) {_secs(s)}; fastest set {s.fastest}; every update needs all N examples, so it cannot "
        "learn online"
    )
    if expensive and slow:
        verdict = "holds"
    elif expensive:
        verdict = "holds only in cost per update: full batch is among the fastest to the target"
    else:
        verdict = f"does not hold: a full-batch update is not measurably dearer than a B={b1} update"
    return verdict, nums, s.plot("seconds_to_target.png")


def c4(s: Sweep) -> Verdict:
    if 1 not in s.sizes:
        return "not measured (no B=1 run)", "-", "-"
    mini = [b for b in s.sizes if 1 < b < s.n]
    osc1 = s.oscillation(1)
    others = {b: s.oscillation(b) for b in mini}
    cheap = all(s.cheaper(1, b) for b in s.sizes if b != 1)
    wanders = bool(others) and all(_differ(osc1, o) for o in others.values())
    poor = bool(s.fastest) and 1 not in s.fastest and any(b in s.fastest for b in mini)
    micro = table.interval(*(1e6 * x for x in s.step_interval(1)))
    nums = (
        f"B=1 updates take {_g(s.seconds_per_step(1) * 1e6)} us {micro}"
        f" (the cheapest, intervals apart: {cheap}); oscillation of the training loss on a fixed sample "
        f"{_osc(osc1)} at B=1 vs "
        + ", ".join(f"B={b}: {_osc(o)}" for b, o in others.items())
        + f"; fastest set to the target {s.fastest}"
    )
    checks = (
        ("updates are the cheapest", cheap),
        ("it oscillates more than every mini-batch", wanders),
        ("it is slower to the target than the fastest mini-batch", poor),
    )
    parts = [p for p, ok in checks if ok]
    verdict = "holds" if len(parts) == 3 else "does not hold" if not parts else "holds only partly: " + ", ".join(parts)
    return verdict, nums, s.plot("loss_curves.png")


def c5(s: Sweep) -> Verdict:
    if not s.fastest:
        return "not measured (no batch size reached the target)", "-", "-"
    mini = [b for b in s.fastest if 1 < b < s.n]
    nums = f"fastest set (95% intervals overlap the fastest): {s.fastest}; seconds to target {_secs(s)}"
    if mini and len(mini) == len(s.fastest):
        verdict = "holds"
    elif mini:
        verdict = f"holds, tied: the fastest set also holds B={[b for b in s.fastest if b not in mini]}"
    else:
        verdict = f"does not hold: the fastest set is B={s.fastest}"
    return verdict, nums, s.plot("seconds_to_target.png")


def c6(s: Sweep) -> Verdict:
    counted = {b: s.result(b).counted.updates_per_epoch for b in s.sizes}
    expected = {b: math.ceil(s.n / b) for b in s.sizes}
    wrong = {
        b: sorted({u for epoch in v for u in epoch} - {expected[b]})
        for b, v in counted.items()
        if any(epoch != [expected[b]] for epoch in v)
    }
    nums = (
        f"updates in each epoch as the replicas' step counters counted them (N={s.n}): "
        + ", ".join(f"B={b}: {expected[b] if b not in wrong else wrong[b]}" for b in s.sizes)
        + f"; ceil(N/B) = {[expected[b] for b in s.sizes]}"
    )
    if not wrong:
        return "holds, with a partial last batch: ceil(N/B) updates per epoch", nums, "-"
    return f"does not hold at B={sorted(wrong)}", nums, "-"


def c7(s: Sweep) -> Verdict:
    if s.fit is None:
        return "not measured (no trade-off fit)", "-", "-"
    small = [b for b in s.sizes if b <= max(s.fit["b_crit"], min(s.sizes[1:], default=1))]
    per_epoch = [s.result(b).timing.seconds_per_epoch for b in small]
    osc = [s.oscillation(b) for b in small]
    # Endpoints, smallest B against the largest B <= B_crit, each with its interval.
    faster, calmer = s.cheaper(small[-1], small[0], per="epoch"), _differ(osc[0], osc[-1])
    nums = (
        f"for B up to B_crit={_g(s.fit['b_crit'])} ({small}): seconds per epoch {[_g(x) for x in per_epoch]}, "
        f"oscillation {[_osc(x) for x in osc]}; judged from B={small[0]} to B={small[-1]}"
    )
    if faster and calmer:
        verdict = "holds"
    elif faster:
        verdict = "holds only for speed per epoch: the oscillation does not fall beyond the seeds' noise"
    elif calmer:
        verdict = "holds only for oscillation: an epoch is not measurably faster"
    else:
        verdict = "does not hold"
    return verdict, nums, s.plot("steps_to_target.png")


def c8(s: Sweep) -> Verdict:
    """Judged on the measured steps alone, not on the S(B) fit (whose hyperbola cannot fall
    by more than 2x above its own B_crit, so a verdict against it would follow from the
    fit): past the batch size that needs the fewest examples to the target (``E(B)`` is
    minimal there: beyond it a larger batch wastes examples), the largest measured batch
    must need more epochs and buy fewer than 1/``RETURNS`` of the steps its size promises."""
    done = [b for b in s.sizes if s.mean(b, "steps_to_target") is not None]
    if len(done) < 2:
        return "not measured (fewer than 2 batch sizes reached the target)", "-", "-"
    thrift = min(done, key=lambda b: s.mean(b, "examples_to_target"))
    big = [b for b in done if b >= thrift]
    if len(big) < 2:
        return (
            (
                f"not measured: the largest batch size that reached the target (B={thrift}) needs the fewest "
                "examples, so no measured size lies past it"
            ),
            "-",
            s.plot("tradeoff.png"),
        )
    epochs = [s.mean(b, "epochs_to_target") for b in big]
    steps = [s.mean(b, "steps_to_target") for b in big]
    gain, scale = steps[0] / steps[-1], big[-1] / big[0]
    more_epochs = epochs[-1] > epochs[0]
    holds = more_epochs and gain < scale / RETURNS
    bounds = [b for b in big if s.row(b)["lr_edge"]]
    nums = (
        f"past B={thrift} (fewest examples to the target): B {big}, epochs to target {[_g(e) for e in epochs]}, "
        f"steps to target {[_g(x) for x in steps]}: {_g(scale)}x the batch buys {_g(gain)}x fewer steps "
        f"(judged on the measured steps, not on the fit"
        + (f", whose B_crit is {_g(s.fit['b_crit'])}" if s.fit else "")
        + ")"
        + (f"; best LR on a grid edge (steps are upper bounds) at B={bounds}" if bounds else "")
    )
    return ("holds" if holds else "does not hold"), nums, s.plot("tradeoff.png")


def c9(s: Sweep) -> Verdict:
    over, rows = [], []
    for b in s.sizes:
        r = s.row(b)
        rise, at, end = r["test_loss_rise"]["mean"], r["epoch_of_min_test_loss"]["mean"], s.result(b).budget_steps
        minimum = r["min_test_loss"]["mean"]
        over.append(rise is not None and bool(minimum) and rise > OVERFIT_RISE * minimum)
        rows.append(
            f"B={b}: min test loss at epoch {_g(at)} of {_g(end / s.result(b).steps_per_epoch)}, then +{_g(rise)}"
        )
    verdict = (
        "holds"
        if all(over)
        else "does not hold"
        if not any(over)
        else "holds only when the run is long enough to overfit: "
        + ", ".join(f"B={b}" for b, o in zip(s.sizes, over, strict=True) if o)
    )
    return verdict, "; ".join(rows) + " (final train loss keeps falling: see the table)", s.plot("loss_curves.png")


def c10(sweeps: list[Sweep]) -> Verdict:
    """Judged across distinct workloads trained with the same optimizer (the optimizer is
    held fixed, so a difference is the workload's): the best settings differ when two
    workloads' fastest sets share no batch size, or their B_crit intervals lie apart.
    Sweeps without a fastest set (nothing reached the target) take no part."""

    def optimizer(sw: Sweep) -> tuple:
        cfg = sw.config
        return cfg.workload.optimizer, cfg.training.beta2_reference, tuple(cfg.grid.momentum)

    useful = [sw for sw in sweeps if sw.fastest]
    pairs = [
        (a, b)
        for i, a in enumerate(useful)
        for b in useful[i + 1 :]
        if optimizer(a) == optimizer(b) and differences(a.doc, b.doc, optimizer=False)
    ]
    if not pairs:
        return "not measured: no two workloads swept with the same optimizer reached their targets", "-", "-"
    parts, differ = [], []
    for a, b in pairs:
        disjoint = not set(a.fastest) & set(b.fastest)
        ia = interval_bounds(a.fit["interval"]) if a.fit else None
        ib = interval_bounds(b.fit["interval"]) if b.fit else None
        apart = bool(ia and ib and (ia[1] < ib[0] or ib[1] < ia[0]))
        differ.append(disjoint or apart)
        crit = lambda sw: f"B_crit {_g(sw.fit['b_crit'])} {interval_text(sw.fit['interval'])}" if sw.fit else "no fit"  # noqa: E731
        parts.append(
            f"{a.name} vs {b.name} ({optimizer(a)[0]}): fastest sets B={a.fastest} and B={b.fastest}, "
            f"{crit(a)} and {crit(b)}: {'differ' if differ[-1] else 'agree'}"
        )
    verdict = (
        "holds: the best settings differ between workloads"
        if all(differ)
        else "does not hold: the workloads agree"
        if not any(differ)
        else f"holds for {sum(differ)} of {len(differ)} pairs of workloads"
    )
    return verdict, "; ".join(parts), " ".join(sw.plot("best_lr.png") for sw in useful)


def shape_demo(s: Sweep, demo: ShapeDemoDocument | None = None) -> list[dict[str, Any]] | None:
    """Claim C11's measurement per batch size: ``demo``'s (``bench/c11.py``), else what a
    schema-1 sweep recorded at each of its batch sizes (the same measurement, made inside the
    sweep then); None when neither has it."""
    if demo is not None:
        return [
            dict(
                batch_size=r.batch_size,
                shapes=r.batch_shapes,
                plain=r.plain_step_compilations,
                padded=r.padded_epoch_compilations,
                calls=r.padded_epoch_calls,
            )
            for r in demo.rows
        ]
    legacy = {b: s.result(b).compilations for b in s.sizes}
    if any(d is None or d.padded_epoch_compilations is None for d in legacy.values()):
        return None
    return [
        dict(
            batch_size=b,
            shapes=d.batch_shapes,
            plain=d.plain_step_compilations,
            padded=d.padded_epoch_compilations + (d.padded_epoch_round_compilations or 0),
            calls=d.padded_epoch_calls,
        )
        for b, d in legacy.items()
    ]


def c11(s: Sweep, demo: ShapeDemoDocument | None = None) -> Verdict:
    rows = shape_demo(s, demo)
    if rows is None:
        return "not measured (no compilation counts: run bench/c11.py)", "-", "-"
    shapes_ok = all(d["plain"] == len(d["shapes"]) for d in rows)
    partial = [d["batch_size"] for d in rows if len(d["shapes"]) > 1]
    padded_ok = all(d["padded"] == 1 for d in rows)
    nums = (
        "a plain jax.jit step fed an epoch's unpadded batches compiled "
        + ", ".join(f"{d['plain']}x at B={d['batch_size']} (batch sizes {d['shapes']})" for d in rows)
        + "; jbatch's padded, masked epoch compiled "
        + ", ".join(f"{d['padded']}x in {d['calls']} epochs" for d in rows)
    )
    if shapes_ok and padded_ok and partial:
        verdict = "holds: one compilation per batch shape, and padding the last batch keeps one program"
    elif not shapes_ok:
        verdict = "does not hold: the plain step did not compile once per batch shape"
    elif not padded_ok:
        verdict = "does not hold for jbatch's padded epoch: it compiled more than once"
    else:
        verdict = "not shown: no batch size here has a partial last batch"
    return verdict, nums, "-"


CLAIMS: dict[str, Callable[..., Verdict]] = {
    "C1": c1,
    "C2": c2,
    "C3": c3,
    "C4": c4,
    "C5": c5,
    "C6": c6,
    "C7": c7,
    "C8": c8,
    "C9": c9,
}


def _pairs(sweeps: list[Sweep], test, optimizer: bool = False) -> list[tuple[Sweep, Sweep]]:
    """Pairs (a, b) of sweeps of one workload and target (``results.differences``; the
    optimizer compared too when ``optimizer``) where ``test(a, b)``."""
    return [
        (a, b)
        for a in sweeps
        for b in sweeps
        if a is not b and not differences(a.doc, b.doc, optimizer=optimizer) and test(a, b)
    ]


def o1(sweeps: list[Sweep]) -> Verdict:
    """Momentum extends perfect scaling (Shallue et al. 2018): a larger B_crit than plain SGD
    on the same workload, bootstrap intervals apart."""
    return _larger_b_crit(sweeps, ("momentum",), "momentum")


def o4(sweeps: list[Sweep]) -> Verdict:
    """Adam extends perfect scaling further than SGD (Zhang et al. 2019: preconditioning
    raises the critical batch size): a larger B_crit than plain SGD on the same workload,
    intervals apart; Adam without the beta2 rule."""
    return _larger_b_crit(sweeps, ("adam", "adamw"), "Adam")


def _larger_b_crit(sweeps: list[Sweep], optimizers: tuple[str, ...], label: str) -> Verdict:
    pairs = _pairs(
        sweeps,
        lambda a, b: (
            a.config.workload.optimizer == "sgd"
            and b.config.workload.optimizer in optimizers
            and not b.config.training.beta2_reference
        ),
    )
    pairs = [(a, b) for a, b in pairs if a.fit and b.fit]
    if not pairs:
        return f"not measured (no plain-SGD and {label} sweeps of one workload)", "-", "-"
    parts, outcomes = [], []
    for a, b in pairs:
        ia, ib = interval_bounds(a.fit["interval"]), interval_bounds(b.fit["interval"])
        outcome = (
            "tie" if ia is None or ib is None else "larger" if ib[0] > ia[1] else "smaller" if ib[1] < ia[0] else "tie"
        )
        outcomes.append(outcome)
        momenta = [b.row(x)["best_hyperparameters"].get("momentum") for x in b.sizes]
        parts.append(
            f"{a.config.workload.dataset}: B_crit {_g(a.fit['b_crit'])} "
            f"{interval_text(a.fit['interval'])} with SGD, {_g(b.fit['b_crit'])} "
            f"{interval_text(b.fit['interval'])} with {label}"
            + (f" (best momentum per B {momenta})" if label == "momentum" else "")
        )
    each = ", ".join(f"{p[0].config.workload.dataset} {o}" for p, o in zip(pairs, outcomes, strict=True))
    verdict = (
        "holds"
        if all(o == "larger" for o in outcomes)
        else "does not hold"
        if all(o == "smaller" for o in outcomes)
        else "not shown: the intervals overlap"
        if all(o == "tie" for o in outcomes)
        else "holds only on some workloads: " + each
    )
    return verdict, "; ".join(parts), " ".join(b.plot("tradeoff.png") for _, b in pairs)


def o2(sweeps: list[Sweep]) -> Verdict:
    """Adam's best learning rate is not monotone in B (the "surge" of Li et al. 2024): it
    rises, peaks, then falls. Judged on the best learning rate per batch size of each Adam
    sweep without the beta2 rule; equal neighbours are flat, not a fall."""
    adam = [
        s for s in sweeps if s.config.workload.optimizer in ("adam", "adamw") and not s.config.training.beta2_reference
    ]
    if not adam:
        return "not measured (no Adam sweep)", "-", "-"
    parts, surges = [], []
    for s in adam:
        lrs = [s.row(b)["best_learning_rate"] for b in s.sizes]
        peak = int(np.argmax(lrs))
        surge = peak < len(lrs) - 1 and lrs[-1] < lrs[peak] and lrs[0] < lrs[peak]
        surges.append(surge)
        edges = [b for b in s.sizes if s.row(b)["lr_edge"]]
        per = ", ".join(f"{b}: {_g(lr)}" for b, lr in zip(s.sizes, lrs, strict=True))
        near = [x["noise"]["at_target"] for x in s.rows if x["noise"] and x["noise"].get("at_target")]
        parts.append(
            f"{s.name}: best LR per B {per}"
            + (f" (peak at B={s.sizes[peak]})" if surge else "")
            + (f"; measured B_simple near the target {_g(float(np.median(near)))} (median over B)" if near else "")
            + (f"; on a grid edge at B={edges}" if edges else "")
        )
    verdict = (
        "holds: it rises, then falls"
        if all(surges)
        else "not shown: no fall at this resolution (half-decade learning rates; equal neighbours are ties)"
        if not any(surges)
        else "holds on some workloads only"
    )
    return verdict, "; ".join(parts), " ".join(s.plot("best_lr.png") for s in adam)


def o3(sweeps: list[Sweep]) -> Verdict:
    """Keeping Adam's beta2 half-life in examples makes small batches work (Marek et al.
    2025): at the smallest B, the rule reaches the target in fewer steps (seed t intervals
    apart) or with more seeds than the same sweep without it. The test has power only when
    the runs outlast the default beta2's memory: Adam's bias-corrected second moment is an
    average over every step so far until about its half-life, ``ln 0.5 / ln beta2`` steps
    (693 for 0.999), whatever beta2 is; runs that reach the target within ``POWER`` half-lives
    cannot tell the rule from its absence, and say so."""
    pairs = _pairs(
        sweeps,
        lambda a, b: (
            a.config.grid.batch_sizes == b.config.grid.batch_sizes
            and not a.config.training.beta2_reference
            and b.config.training.beta2_reference
        ),
        optimizer=True,
    )
    if not pairs:
        return "not measured (no Adam sweeps with and without the beta2 rule)", "-", "-"

    parts, outcomes = [], []
    for off, on in pairs:
        b = min(off.sizes)
        rows = off.row(b), on.row(b)
        steps = [s.row(b)["steps_to_target"] for s in (off, on)]
        b2 = off.result(b).replicas[0].hyperparameters.get("b2", 0.999)
        half_life = math.log(0.5) / math.log(b2)
        if steps[0]["mean"] is not None and steps[0]["mean"] < POWER * half_life:
            outcomes.append("no power")
            parts.append(
                f"{off.config.workload.dataset}, B={b}: the runs reach the target in {_g(steps[0]['mean'])} "
                f"steps, within {POWER:g} half-lives of beta2 = {b2:g} ({_g(half_life)} steps): too short "
                f"for the rule to matter"
            )
            continue
        iv = [mean_interval(v, log=True) if v else None for v in (_steps(off, b), _steps(on, b))]
        more = rows[1]["reached"] > rows[0]["reached"]
        faster = iv[0] and iv[1] and iv[1][1] < iv[0][0]
        slower = iv[0] and iv[1] and iv[1][0] > iv[0][1]
        outcomes.append(
            "better" if more or faster else "worse" if slower or rows[1]["reached"] < rows[0]["reached"] else "tie"
        )
        parts.append(
            f"{off.config.workload.dataset}, B={b}: without the rule {rows[0]['reached']}/"
            f"{rows[0]['seeds']} seeds reach it in "
            f"{_g(steps[0]['mean'])} steps (best LR {_g(rows[0]['best_learning_rate'])}), with it "
            f"{rows[1]['reached']}/{rows[1]['seeds']} in {_g(steps[1]['mean'])} (best LR "
            f"{_g(rows[1]['best_learning_rate'])}); best test accuracy "
            f"{_g(rows[0]['best_test_accuracy']['mean'])} vs {_g(rows[1]['best_test_accuracy']['mean'])}"
        )
    verdict = (
        {
            "better": "holds",
            "worse": "does not hold: worse with the rule",
            "tie": "not shown: no difference beyond the seeds' spread",
            "no power": "not testable here: every run ends before beta2's memory matters",
        }[outcomes[0]]
        if len(set(outcomes)) == 1
        else "holds on some workloads only"
        if "better" in outcomes
        else "not shown: " + ", ".join(sorted(set(outcomes)))
    )
    return verdict, "; ".join(parts), " ".join(s.plot("steps_to_target.png") for p in pairs for s in p)


def o5(sweeps: list[Sweep]) -> Verdict:
    """B_crit is predicted by the gradient noise scale averaged along training (McCandlish et
    al. 2018, for SGD): on every plain-SGD sweep with a fit and a measured noise scale, the
    ratio B_crit / B_simple (B_crit's bootstrap interval over ``summary.noise_averaged``)
    reaches into [1/``NOISE_FACTOR``, ``NOISE_FACTOR``]. Momentum and Adam change the
    relation (the step is not the gradient times a constant: momentum averages gradients
    across steps, Adam rescales each coordinate), so their ratios are shown, not judged."""
    parts, outcomes = [], []
    for s in sweeps:
        along = noise_averaged(s.rows)
        if not s.fit or not along:
            continue
        optimizer = s.config.workload.optimizer
        sgd = optimizer == "sgd"
        bounds = interval_bounds(s.fit["interval"])
        lo, hi = (bounds[0] / along, bounds[1] / along) if bounds else (math.nan, math.nan)
        near = [x["noise"]["at_target"] for x in s.rows if x["noise"] and x["noise"].get("at_target")]
        if sgd and bounds:
            outcomes.append(lo <= NOISE_FACTOR and hi >= 1 / NOISE_FACTOR)
        label = "" if sgd and bounds else " (no interval, not judged)" if sgd else f" ({optimizer}, not judged)"
        parts.append(
            f"{s.name}{label}: "
            f"B_crit {_g(s.fit['b_crit'])} {interval_text(s.fit['interval'])}, B_simple averaged along "
            f"training {_g(along)}, ratio {_g(s.fit['b_crit'] / along)}"
            + (f" {table.interval(lo, hi)}" if bounds else "")
            + (f" (near the target {_g(float(np.median(near)))})" if near else "")
        )
    if not outcomes:
        return "not measured (no plain-SGD sweep with a fit and a measured noise scale)", "; ".join(parts) or "-", "-"
    verdict = (
        "holds"
        if all(outcomes)
        else "does not hold"
        if not any(outcomes)
        else f"holds on {sum(outcomes)} of {len(outcomes)} SGD sweeps"
    )
    return verdict, "; ".join(parts), " ".join(s.plot("noise_scale.png") for s in sweeps if s.fit)


def _steps(s: Sweep, b: int) -> list[float]:
    return best_steps(next(x for x in s.rows if x["row"]["batch_size"] == b))


OPTIMIZER_CLAIMS = {
    "O1": ("Momentum extends the range of perfect scaling over plain SGD (Shallue et al. 2018).", o1),
    "O2": ("Adam's best learning rate rises and then falls with the batch size (Li et al. 2024).", o2),
    "O3": (
        "With beta2 rescaled to keep its half-life in examples, small batches train well with Adam "
        "(Marek et al. 2025).",
        o3,
    ),
    "O4": ("Adam extends the range of perfect scaling over plain SGD (Zhang et al. 2019).", o4),
    "O5": (
        "The critical batch size is the gradient noise scale averaged along training, for SGD "
        "(McCandlish et al. 2018).",
        o5,
    ),
}


def verdicts(sweeps: list[Sweep], demo: ShapeDemoDocument | None = None) -> dict[str, Verdict]:
    """Every claim's verdict; C10 across all sweeps, C11 from ``demo`` (or the primary
    sweep's own record of it), the others on the first (primary) sweep."""
    out = {cid: fn(sweeps[0]) for cid, fn in CLAIMS.items()}
    out["C10"] = c10(sweeps)
    out["C11"] = c11(sweeps[0], demo)
    return dict(sorted(out.items(), key=lambda kv: int(kv[0][1:])))


def claims_markdown(
    sweeps: list[Sweep], advices: dict[str, AdviceDocument] | None = None, demo: ShapeDemoDocument | None = None
) -> str:
    """``claims.md``: one row per claim."""
    lines = [
        "# The tutorial's claims, measured",
        "",
        f"Generated by `jbatch claims` from {', '.join(f'`{s.directory.name}/sweep.json`' for s in sweeps)}"
        + "".join(f", `advise-{name}/advise.json`" for name in advices or {})
        + (", `c11/c11.json`" if demo is not None else "")
        + f" alone. Primary workload: `{sweeps[0].name}`. Oscillation = share of the training loss's movement "
        "that goes uphill, the loss evaluated on a fixed sample of training rows at every fine point of a run "
        "(no sampling noise: 0, it only falls; 0.5, as much up as down), mean ± std over the seeds at each "
        "batch size's best learning rate. Timing intervals are 95% within one run (interleaved rounds). "
        "Thresholds and their reasons are in `jbatch/claims.py`.",
        "",
    ]
    rows = [[cid, verdict, nums, plot] for cid, (verdict, nums, plot) in verdicts(sweeps, demo).items()]
    lines += table.markdown(["claim", "verdict", "numbers", "plot"], rows)
    field = [[cid, text, *fn(sweeps)] for cid, (text, fn) in OPTIMIZER_CLAIMS.items()]
    if advices:
        from jbatch.report.advice import finder_lines, markdown_lines, o6, o7

        field.append(
            [
                "O6",
                "A batch-size warm-up reaches the target in fewer steps than the best fixed batch size "
                "without losing final quality (Merrill et al. 2025).",
                *o6(advices),
            ]
        )
        field.append(
            [
                "O7",
                "`jbatch advise` picks a batch size within 1.25x of the sweep's fastest, never slower than the "
                "rules people use (largest that fits, most samples/s, the playbook's, the noise scale, B = 32), at a "
                "fifth of "
                "a sweep's cost (jbatch's own goal, issue 33).",
                *o7(advices),
            ]
        )
    lines += [
        "",
        "## What the field measured since, on jbatch's sweeps",
        "",
        *table.markdown(["claim", "statement", "verdict", "numbers", "plot"], field),
    ]
    if advices:
        lines += ["", "## `jbatch advise` against the sweeps", "", *markdown_lines(advices)]
        finders = finder_lines(advices)
        if finders:
            lines += ["", "## `jbatch advise` against the batch-size finders people use", "", *finders]
    return "\n".join(lines) + "\n"


def published(results: str | Path = "results") -> tuple[list[Path], list[Path], Path | None]:
    """What ``jbatch claims`` reads by default from a results directory: the presets' sweeps (in
    the presets' order; the first is the primary workload), every advice there (the presets'
    first, then any other: a user model's) and claim C11's demonstration (``c11/c11.json``)."""
    from jbatch.results import ADVICE, SWEEP
    from jbatch.sweeps.presets import PRESETS

    results = Path(results)
    sweeps = [d for d in (results / name for name in PRESETS) if (d / SWEEP).exists()]
    advice = [d for d in (results / f"advise-{name}" for name in PRESETS) if (d / ADVICE).exists()] + sorted(
        d.parent for d in results.glob("advise-*/" + ADVICE) if d.parent.name[7:] not in PRESETS
    )
    demo = results / "c11" / "c11.json"
    return sweeps, advice, demo if demo.exists() else None


def claims_text(directories: list[str | Path], advice: list[str | Path] = (), demo: str | Path | None = None) -> str:
    """The claims report from the sweep directories (first one primary), the advice
    directories checked against sweeps (``jbatch.report.advice``) and claim C11's
    demonstration (``demo``: a ``c11.json`` of ``bench/c11.py``)."""
    from jbatch.report.advice import load_advice

    sweeps = [Sweep(Path(d), read_sweep(d)) for d in directories]
    advices = {Path(d).name.removeprefix("advise-"): load_advice(d) for d in advice}
    shapes = None if demo is None else load(demo, ShapeDemoDocument)
    return claims_markdown(sweeps, advices, shapes)


def write_claims(
    directories: list[str | Path], out: str | Path, advice: list[str | Path] = (), demo: str | Path | None = None
) -> Path:
    """Writes ``claims_text`` to ``out``."""
    return write_text(out, claims_text(directories, advice, demo))
