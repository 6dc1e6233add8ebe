"""``jbatch advise``'s report (``advise.md``) from its JSON alone, and the advice checked against
the truth: one row per workload whose advice was run ``--against`` its sweep
(``advise-<name>/advise.json``), and Merrill et al. 2025's claim that a batch-size warm-up
reaches the target in fewer steps than the best fixed batch size without losing final quality,
judged on the warm-ups those advices trained (``sweeps.warmup_check``).

The goals (issue 24): the advice costs at most ``COST_GOAL`` of the sweep it replaces, and its
recommendation's measured seconds to target are within ``PICK_GOAL`` of the sweep's fastest.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from jbatch.analysis.stats import bounds
from jbatch.errors import ConfigError
from jbatch.report import table
from jbatch.results import ADVICE, read_advice
from jbatch.results.records import AdviceDocument, Branching, Spread, WarmupCheck

COST_GOAL = 0.2
PICK_GOAL = 1.25
Verdict = tuple[str, str, str]


def _g(v: float | None) -> str:
    return "-" if v is None else f"{v:.3g}"


def _ci(ci: list[float | None] | None) -> str:
    return "" if not ci else f" [{_g(ci[0])}, {'inf' if ci[1] is None else _g(ci[1])}]"


# advise.md


def markdown(doc: AdviceDocument) -> str:
    """The advice as a short report (``advise.md``)."""
    rec, cost = doc.recommended, doc.cost
    lines = ["# Batch-size advice", ""]
    if not doc.trunk_learned:
        lines += [
            f"**Cannot tell B_crit: the trunk's held-out loss did not fall beyond its noise in "
            f"{doc.branching.checkpoints[-1].step} steps at B = {doc.trunk_batch}**, so every branch was within "
            "tolerance and B* below is noise; give a longer trunk (--trunk-steps) or a larger learning-rate grid.",
            "",
        ]
    if doc.warmup_check and (overruled := found_worse(doc.warmup_check)):
        lines += [f"**The warm-up this advice proposed is not advised: {overruled}.**", ""]
    if doc.seesaw and doc.seesaw.check and (overruled := found_worse(doc.seesaw.check)):
        lines += [f"**The Seesaw schedule this advice proposed is not advised: {overruled}.**", ""]
    members = doc.recommended_set or [rec]
    lines += [
        f"**Recommended fixed batch size: {rec}** (B_crit from the branches: {doc.b_crit:g}"
        f"{', a lower bound' if doc.b_crit_censored else ''}; noise scale B_simple averaged along the run: "
        f"{doc.b_simple_along_training:.3g}).",
        "",
        f"Recommended set (predicted seconds to target that the timing intervals and the seeds' own B* cannot "
        "tell apart"
        f"{f', after {doc.retimed} more batches of rounds for them' if doc.retimed else ''}): {members}; "
        "the recommendation is its member of fewest predicted steps, which timing noise cannot move.",
        "",
        "| B | seconds/step [interval] | predicted steps / B0's | predicted seconds / recommended's |",
        "|---|---|---|---|",
    ]
    for b in doc.candidates:
        t = doc.timing[str(b)]
        lo, hi = t.seconds_per_step_interval
        rel_steps, rel_seconds = doc.relative_steps[str(b)], doc.relative_seconds[str(b)]
        per_step = f"{t.seconds_per_step:.4g} [{lo:.4g}, {hi:.4g}]"
        lines.append(f"| {b} | {per_step} | {rel_steps:.3g} | {rel_seconds:.3g} |")
    phases = " -> ".join(
        f"{p.batch_size} ({p.steps} steps)" if p.steps else f"{p.batch_size} (then on)" for p in doc.warmup
    )
    meta = doc.metadata
    lines += [
        "",
        f"Batch-size warm-up: {phases}: "
        + (f"advised ({doc.warmup_reason})." if doc.warmup_advised else f"not advised ({doc.warmup_reason}).")
        if doc.warmup_reason
        else f"Batch-size warm-up: {phases}.",
        *seesaw_lines(doc),
        "",
        *branching_lines(doc.branching),
        "",
        f"Cost: {cost.total:.1f} s (timing {cost.timing:.1f} s, trunk and branches "
        f"{cost.branching:.1f} s){_estimate(doc)}. "
        f"Measured on {meta.device_kind} ({meta.cpu}), jax {meta.versions.get('jax', '?')}, {meta.date}.",
    ]
    truth = doc.against
    if truth:
        fraction, basis = cost_fraction(doc)
        ratio = truth.recommended_over_fastest
        lines += [
            "",
            f"Against the sweep `{truth.directory}` ({truth.seconds:.0f} s; the advice cost {_g(fraction)}: {basis}): "
            f"its fastest batch size {truth.fastest} (fastest set {truth.fastest_set}); the recommendation's "
            "measured seconds to target over the fastest's: "
            + (
                "not measured (not one of its batch sizes, or it missed the target)"
                if ratio is None
                else f"{ratio:.2f} {_ci(truth.recommended_over_fastest_interval).strip()}"
            )
            + ".",
        ]
    if doc.warmup_check:
        lines += ["", *warmup_lines(doc.warmup_check)]
    if doc.seesaw and doc.seesaw.check:
        lines += ["", *warmup_lines(doc.seesaw.check, "Seesaw")]
    return "\n".join(lines) + "\n"


def seesaw_lines(doc: AdviceDocument) -> list[str]:
    """Seesaw, the second schedule candidate (``sweeps.seesaw``), in a sentence (none for an
    advice from before it was weighed)."""
    if doc.seesaw is None:
        return []
    s = doc.seesaw
    phases = " -> ".join(
        f"{p.batch_size} ({p.steps} steps)" if p.steps else f"{p.batch_size} (then on)" for p in s.phases
    )
    return [
        "",
        f"Seesaw (Meterez et al. 2025: where the schedule would halve the learning rate, twice the batch size and "
        f"the learning rate times 1/sqrt(2)): {phases}: {'advised' if s.advised else 'not advised'} ({s.reason}).",
    ]


def _estimate(doc: AdviceDocument) -> str:
    est = doc.sweep_estimate  # older advice documents have none
    if not est or not est.fraction:
        return ""
    return (
        f"; the full sweep it replaces would train for at least {est.seconds:.0f} s here (its grid's "
        f"steps x these seconds per step): the advice cost {est.fraction:.2g} of that"
    )


def branching_lines(result: Branching) -> list[str]:
    """A Markdown table of ``B*`` and ``B_simple`` along the trunk."""
    plan = result.plan
    lines = [
        f"Local critical batch size (branches of {plan.examples} examples from a B = {plan.batch_size} "
        f"trunk at lr {plan.learning_rate:g}, {plan.rule} rule, tolerance {plan.tolerance:g} or the seeds' spread "
        "of the B0 continuation, whichever is larger):",
        "",
        "| trunk step | held-out loss | tolerance | B* per seed | B* of the median losses | larger branches "
        "| B_simple per seed |",
        "|---|---|---|---|---|---|---|",
    ]
    for e in result.checkpoints:
        stars = ", ".join(f"{b}{'+' if e.censored[s] else ''}" for s, b in e.b_star.items())
        simple = ", ".join(f"{v:.3g}" for v in e.b_simple.values())
        loss = float(np.median(list(e.loss.values())))
        tol = plan.tolerance if e.tolerance is None else e.tolerance
        more = "; ".join(f"up to {x.batch_sizes[-1]} ({x.examples} examples)" for x in e.extensions) or "-"
        median = f"{e.b_star_median:g}{'+' if e.censored_median else ''}"
        lines.append(f"| {e.step} | {loss:.4g} | {tol:.3g} | {stars} | {median} | {more} | {simple} |")
    lines += [
        "",
        "'+': the largest batch size tried was within the tolerance (a lower bound). Larger branches: where the "
        "median B* was the largest tried, every seed branched again from the same trunk state at larger sizes, "
        "with more examples, up to the largest candidate.",
    ]
    return lines


def _interval(ci: list[float | None]) -> str:
    return _ci(ci).strip()


def _spread_text(x: Spread) -> str:
    if not x.n:
        return f"not reached (0 of {x.of})"
    missed = f", {x.of - x.n} of {x.of} missed" if x.n < x.of else ""
    return f"{x.mean:.4g} {_interval(x.interval)}{missed}"


def _ratio(x) -> str:
    return f"{x.ratio:.3g} {_interval(x.ratio_interval)}" if x.ratio is not None else "-"


def warmup_lines(check: WarmupCheck, label: str = "warm-up") -> list[str]:
    """A schedule's check (the warm-up's, or Seesaw's: ``label``) as a sentence, a table
    (schedule, fixed, their ratio) and its verdict."""
    steps, secs, final = check.steps_to_target, check.seconds_to_target, check.final
    ref = check.reference["batch_size"]
    phases = " -> ".join(f"{p.batch_size} x {p.steps} (lr {p.learning_rate:g})" for p in check.phases)
    goal = f"{check.metric} {'>=' if check.higher_is_better else '<='} {check.target:g}"
    rates = (
        "the sweep's best learning rate for its batch size"
        if label == "warm-up"
        else f"the sweep's best learning rate at B = {check.phases[0].batch_size} times sqrt(B / "
        f"{check.phases[0].batch_size}) (Seesaw's rule)"
    )
    return [
        f"The {label} trained to the target ({goal}) on {len(check.seeds)} seeds, each phase at {rates}, "
        f"for the examples the sweep's B = {ref} run saw: {phases}.",
        "",
        f"| | steps to target | seconds to target | final {check.metric} |",
        "|---|---|---|---|",
        *(
            f"| {name} | {_spread_text(getattr(steps, k))} | {_spread_text(getattr(secs, k))} | "
            f"{_spread_text(getattr(final, k))} |"
            for name, k in ((label, "warmup"), (f"fixed B = {ref}", "fixed"))
        ),
        f"| {label} / fixed | {_ratio(steps)} | {_ratio(secs)} | |",
        "",
        f"Verdict on the steps (95% intervals over seeds): {verdict(check)}.",
    ]


def write_advice(doc: AdviceDocument, directory: Path) -> list[Path]:
    """``advise.json`` (through the results contract) and ``advise.md`` from it."""
    from jbatch.results import dump
    from jbatch.store import write_text

    return [dump(directory / ADVICE, doc, indent=1), write_text(directory / "advise.md", markdown(doc))]


# the advice against its sweep (claims.md)


def verdict(check: WarmupCheck) -> str:
    """``"fewer"`` when the warm-up's steps to target are below the reference's beyond the
    seeds' intervals (every seed reached the target), ``"more"`` when above (or a seed
    missed), else ``"tie"``; ``", worse final"`` added when the final values' intervals are
    apart in the reference's favour."""
    mine, theirs = check.steps_to_target.warmup, check.steps_to_target.fixed
    (m_lo, m_hi), (t_lo, t_hi) = bounds(mine.interval), bounds(theirs.interval)
    if mine.n < mine.of:
        outcome = "more"  # a seed never reached the target within the budget
    elif m_hi < t_lo:
        outcome = "fewer"
    elif m_lo > t_hi:
        outcome = "more"
    else:
        outcome = "tie"
    (a_lo, a_hi), (b_lo, b_hi) = bounds(check.final.warmup.interval), bounds(check.final.fixed.interval)
    worse = (a_hi < b_lo) if check.higher_is_better else (a_lo > b_hi)
    return outcome + (", worse final" if worse else "")


def found_worse(check: WarmupCheck) -> str | None:
    """Why the warm-up's check found it worse than the fixed batch size (more steps beyond the
    seeds' intervals, a seed that missed the target, a worse final value, or more seconds beyond
    the interval), or None: what overrules the advice's prediction (``advise.apply_check``)."""
    found, seconds = verdict(check), check.seconds_to_target
    if not (found.startswith("more") or "worse final" in found or bounds(seconds.ratio_interval or [0.0, 0.0])[0] > 1):
        return None
    return (
        f"its check against the sweep found it worse than fixed B = {check.reference['batch_size']} "
        f"(steps: {found}; seconds {_g(seconds.ratio)} of the fixed size's)"
    )


def load_advice(directory: str | Path) -> AdviceDocument:
    """The advice document of ``directory``, refused in one line unless it is one checked
    against a sweep."""
    doc = read_advice(directory)
    if doc.against is None:
        raise ConfigError(f"{Path(directory) / ADVICE} was not run --against a sweep: nothing to check it with")
    return doc


def row(name: str, doc: AdviceDocument) -> list[str]:
    """One workload's row of the table (see ``HEADER``)."""
    truth, check = doc.against, doc.warmup_check
    ratio = truth.recommended_over_fastest
    cost = truth.cost_fraction
    met = [
        f"cost {'yes' if cost is not None and cost <= COST_GOAL else 'no'}",
        f"pick {'yes' if ratio is not None and ratio <= PICK_GOAL else 'no'}",
    ]
    cost, basis = cost_fraction(doc)
    met[0] = f"cost {'yes' if cost is not None and cost <= COST_GOAL else 'no'}"
    b_crit = f"{_g(truth.b_crit)}{_ci(truth.b_crit_interval)}"
    star = f"{doc.b_crit:.3g}{'+' if doc.b_crit_censored else ''}"
    phases = " -> ".join(f"{p.batch_size}" + (f" x {p.steps}" if p.steps else "") for p in doc.warmup)
    cells = [
        name,
        f"{_g(cost)} ({basis})",
        f"{doc.recommended} (fastest {truth.fastest}; tie set {truth.fastest_set})",
        f"{_g(ratio)}{_ci(truth.recommended_over_fastest_interval)}",
        f"{star} / {_g(doc.b_simple_along_training)} / {b_crit}",
        phases,
    ]
    if check:
        steps, secs, final = check.steps_to_target, check.seconds_to_target, check.final
        cells += [
            f"{_g(steps.ratio)}{_ci(steps.ratio_interval)}",
            f"{_g(secs.ratio)}{_ci(secs.ratio_interval)}",
            f"{_g(final.warmup.mean)}{_ci(final.warmup.interval)} vs {_g(final.fixed.mean)}{_ci(final.fixed.interval)}",
            verdict(check),
        ]
    else:
        cells += ["not trained"] * 3 + ["-"]
    return [*cells, ", ".join(met)]


HEADER = [
    "workload",
    "advice cost / sweep cost (basis)",
    "recommended B",
    "its seconds to target / the fastest's [95%]",
    "B* plateau / B_simple (advice) / sweep's B_crit [95%]",
    "warm-up (B x steps)",
    "warm-up steps / fixed [95%]",
    "warm-up seconds / fixed [95%]",
    "final metric: warm-up vs fixed [95%]",
    "steps verdict",
    "goals (cost <= 0.2, pick <= 1.25x)",
]


def markdown_lines(advices: dict[str, AdviceDocument]) -> list[str]:
    """The table of every workload's advice against its sweep, with how it was made."""
    lines = [
        "Each advice is `jbatch advise --preset NAME --against results/NAME` (its own defaults): its cost in "
        "wall seconds against the sweep's, its recommendation's measured seconds to target over the sweep's "
        "fastest batch size's (the sweep's interleaved timing and seeds; 95% interval), the local critical "
        "batch size B* where it plateaus ('+': a lower bound) and the noise scale beside the sweep's fitted "
        "B_crit, and the warm-up it proposes trained to the sweep's target on the sweep's seeds, each phase at "
        "the sweep's best learning rate for its batch size, against the fastest fixed batch size (ratios of "
        "means over seeds, 95% intervals).",
        "",
    ]
    return lines + table.markdown(HEADER, [row(name, doc) for name, doc in advices.items()])


def o6(advices: dict[str, AdviceDocument]) -> Verdict:
    """A batch-size warm-up reaches the target in fewer steps than the best fixed batch size
    without losing final quality (Merrill et al. 2025): per workload ``verdict``
    ("fewer" holds; "more" or a worse final value does not; "tie" shows nothing)."""
    parts, outcomes = [], []
    for name, doc in advices.items():
        check = doc.warmup_check
        if not check:
            continue
        if {p.batch_size for p in check.phases} == {check.reference["batch_size"]}:
            parts.append(f"{name}: left out (the schedule is the fixed B = {check.reference['batch_size']} itself)")
            continue
        v = verdict(check)
        outcomes.append("holds" if v == "fewer" else "tie" if v == "tie" else "does not hold")
        steps = check.steps_to_target
        phases = " -> ".join(str(p.batch_size) for p in check.phases)
        parts.append(
            f"{name}: warm-up {phases} vs fixed B = {check.reference['batch_size']}: steps "
            f"{_g(steps.warmup.mean)} vs {_g(steps.fixed.mean)}, ratio {_g(steps.ratio)}"
            f"{_ci(steps.ratio_interval)} ({v}"
            + (
                f"; about {need} seeds per arm would separate them if this ratio and spread held"
                if v == "tie" and (need := seeds_needed(steps.warmup, steps.fixed))
                else ""
            )
            + ")"
        )
    if not outcomes:
        return "not measured (no advice run --against a sweep)", "-", "-"
    n = len(outcomes)
    holds = outcomes.count("holds")
    verdict_text = (
        "holds"
        if holds == n
        else "does not hold"
        if outcomes.count("does not hold") == n
        else f"not shown: a tie on all {n} workloads (the intervals over seeds overlap)"
        if outcomes.count("tie") == n
        else f"holds on {holds} of {n} workloads, does not on {outcomes.count('does not hold')}, "
        f"ties on {outcomes.count('tie')}"
    )
    return verdict_text, "; ".join(parts), " ".join(f"[advise.md](advise-{name}/advise.md)" for name in advices)


def cost_fraction(doc: AdviceDocument) -> tuple[float | None, str]:
    """The advice's cost over the sweep's, and on what basis: the sweep's measured wall time
    when both ran on the same machine (CPU model or device kind, and cores), else the lower
    bound of the sweep's training steps at the advice's own seconds per step (``sweep_estimate``)."""
    from jbatch.analysis.finders import machine

    truth = doc.against
    if truth and truth.machine and truth.machine == machine(doc.metadata):
        return truth.cost_fraction, f"{doc.cost.total:.0f} s / {truth.seconds:.0f} s, same machine"
    est = doc.sweep_estimate
    if est and est.fraction:
        where = f"sweep on {truth.machine}" if truth and truth.machine else "sweep's machine unknown"
        return est.fraction, f"{doc.cost.total:.0f} s / lower bound {est.seconds:.0f} s ({where})"
    return None, "no same-machine sweep, no estimate"


def _pick_cell(doc: AdviceDocument, b: int | None) -> str:
    from jbatch.analysis.finders import measured

    if b is None:
        return "-"
    m = measured(doc, b)
    if m["missed"]:
        return f"{b}: missed"
    if m["ratio"] is None:
        return f"{b}: not swept"
    return f"{b}: {m['ratio']:.3g}{_ci(m['interval'])}"


FINDER_HEADER = [
    "workload (seeds)",
    *("largest that fits", "most samples/s", "playbook", "noise scale", "B = 32", "jbatch advise"),
    "advise: goals (<= 1.25x, never worse, cost <= 0.2)",
]


def finder_row(name: str, doc: AdviceDocument) -> list[str]:
    """One workload: each rule's batch size and its measured seconds to target over the sweep's
    fastest [95%] (``analysis.finders``), and advise's goals (``goals``)."""
    from jbatch.analysis.finders import RULES, picks

    chosen = picks(doc)
    seeds = max((n[1] for n in doc.against.reached.values()), default=0)
    return [
        f"{name} ({seeds})",
        *(_pick_cell(doc, chosen[r]) for r in RULES),
        ", ".join(text for _, text in goals(doc)),
    ]


def goals(doc: AdviceDocument) -> list[tuple[bool, str]]:
    """Advise's three goals on one workload, each met or not, with the measurement that says why
    not: its pick within ``PICK_GOAL`` of the sweep's fastest (or in the sweep's own fastest
    set), no other rule's pick faster beyond both intervals, and a cost of at most ``COST_GOAL``
    (``cost_fraction``; where the time went when not)."""
    from jbatch.analysis.finders import RULES, picks, worse

    truth, chosen = doc.against, picks(doc)
    ratio = _finders_ratio(doc)
    pick_met = ratio is not None and ratio <= PICK_GOAL
    pick = "yes" if pick_met else f"no ({_g(ratio)}x"
    if not pick_met:
        tie = doc.recommended in truth.fastest_set
        pick += "; in the sweep's fastest set: its intervals cannot tell them apart)" if tie else ")"
    beaten_by = [r for r in RULES if r != "advise" and worse(doc, doc.recommended, chosen[r])]
    cost, _ = cost_fraction(doc)
    cost_met = cost is not None and cost <= COST_GOAL
    spent = doc.cost
    where = (
        f"; learning rate {spent.learning_rate:.0f} s, branches {spent.branching:.0f} s, timing "
        f"{spent.timing:.0f} s of {spent.total:.0f} s"
    )
    return [
        (pick_met, pick),
        (not beaten_by, "yes" if not beaten_by else f"no (worse than {', '.join(RULES[r] for r in beaten_by)})"),
        (cost_met, f"{'yes' if cost_met else 'no'} ({_g(cost)}{'' if cost_met or cost is None else where})"),
    ]


def _finders_ratio(doc: AdviceDocument) -> float | None:
    from jbatch.analysis.finders import measured

    return measured(doc, doc.recommended)["ratio"]


def finder_lines(advices: dict[str, AdviceDocument]) -> list[str]:
    """The table of every rule's pick against the sweep's fastest (only advices that recorded the
    sweep's per-batch-size intervals: run with this version)."""
    rows = [finder_row(name, doc) for name, doc in advices.items() if doc.against and doc.against.reached]
    if not rows:
        return []
    return [
        "Each cell: the batch size the rule picks and its measured seconds to the target over the sweep's fastest "
        "batch size's (the sweep's interleaved timing and seeds, 95% interval; 'missed': a seed never reached the "
        "target). Largest that fits: PyTorch Lightning's `scale_batch_size` and accelerate's "
        "`find_executable_batch_size` find the largest batch that runs without running out of memory; here "
        "Lightning's binary search (`jbatch/sweeps/fits.py`: a real out-of-memory probe on an accelerator, XLA's "
        "memory plan within a stated capacity on a CPU) and the largest candidate within its margin of what it "
        f"found ({_fits_methods(advices)}). Playbook: "
        "the largest batch size that still reduces the steps to the target (Google's tuning playbook), up the "
        "sweep's batch sizes. Noise scale: B_simple averaged along the advice's run (McCandlish et al. 2018), the "
        "nearest candidate on a log scale; B = 32 likewise. Most samples/s: DeepSpeed's autotuner, the batch "
        "size of highest training throughput in the sweep's timing rounds. 'Never worse': no other rule's pick is "
        "faster beyond both intervals; '-': the rule has no pick (no batch size cut the steps, or no throughput "
        "recorded). The cost basis is in the table above.",
        "",
        *table.markdown(FINDER_HEADER, rows),
    ]


def _fits_methods(advices: dict[str, AdviceDocument]) -> str:
    """How each advice found the largest batch that fits, said once per way."""
    ways: dict[str, list[str]] = {}
    for name, doc in advices.items():
        way = doc.fits.method if doc.fits else "no probe recorded: the largest candidate"
        ways.setdefault(way, []).append(name)
    if len(ways) == 1:
        return f"every row: {next(iter(ways))}"
    return "; ".join(f"{way}: {', '.join(names)}" for way, names in ways.items())


def o7(advices: dict[str, AdviceDocument]) -> Verdict:
    """``jbatch advise`` picks a batch size within ``PICK_GOAL`` of the sweep's fastest, never
    worse (beyond the intervals) than the batch-size rules people use, at most ``COST_GOAL``
    of the sweep: per workload, all three."""
    rows = {name: finder_row(name, doc) for name, doc in advices.items() if doc.against and doc.against.reached}
    if not rows:
        return "not measured (no advice run --against a sweep with this version)", "-", "-"
    met = {name: all(ok for ok, _ in goals(advices[name])) for name in rows}
    parts = [f"{name}: {r[-1]}" for name, r in rows.items()]
    n, k = len(met), sum(met.values())
    verdict_text = "holds" if k == n else "does not hold" if not k else f"holds on {k} of {n} workloads"
    return verdict_text, "; ".join(parts), "the finder table below"


def seeds_needed(spread_a: Spread, spread_b: Spread, level: float = 0.95) -> int | None:
    """A power calculation for ``verdict``: the seeds per arm at which the two arms' 95% intervals
    of the mean log steps (t with n - 1 degrees of freedom, as ``stats.mean_interval`` gives them)
    would stop overlapping, if the observed means and spreads held. None when the means are
    equal or an arm has one value.

    Examples:
      >>> a = Spread(values=[100.0, 120.0], n=2, of=2, mean=None, interval=[None, None])
      >>> b = Spread(values=[150.0, 170.0], n=2, of=2, mean=None, interval=[None, None])
      >>> seeds_needed(a, b)  # log-sd about 0.13 and 0.09 per arm, a gap of 0.34
      4
    """
    from scipy import stats

    a, b = np.log(spread_a.values), np.log(spread_b.values)
    if len(a) < 2 or len(b) < 2 or a.mean() == b.mean():
        return None
    effect, spread = abs(a.mean() - b.mean()), a.std(ddof=1) + b.std(ddof=1)
    for n in range(2, 10_001):
        if stats.t.ppf(0.5 + level / 2, n - 1) * spread / np.sqrt(n) < effect:
            return n
    return None
