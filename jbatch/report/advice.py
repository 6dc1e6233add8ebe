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

from jbatch.errors import ConfigError
from jbatch.report import table
from jbatch.results import ADVICE, read_advice
from jbatch.results.records import AdviceDocument, Branching, Spread, WarmupCheck

COST_GOAL = 0.2
PICK_GOAL = 1.25
Verdict = tuple[str, str, str]


def _g(v: float | None) -> str:
    return "-" if v is None else f"{v:.3g}"


def _ci(ci: list[float] | None) -> str:
    return "" if not ci else f" [{ci[0]:.3g}, {ci[1]:.3g}]"


# advise.md


def markdown(doc: AdviceDocument) -> str:
    """The advice as a short report (``advise.md``)."""
    rec, cost = doc.recommended, doc.cost
    lines = [
        "# Batch-size advice",
        "",
        f"**Recommended fixed batch size: {rec}** (B_crit from the branches: {doc.b_crit:g}"
        f"{', a lower bound' if doc.b_crit_censored else ''}; noise scale B_simple averaged along the run: "
        f"{doc.b_simple_along_training:.3g}).",
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
        f"Batch-size warm-up: {phases}.",
        "",
        *branching_lines(doc.branching),
        "",
        f"Cost: {cost.total:.1f} s (timing {cost.timing:.1f} s, trunk and branches "
        f"{cost.branching:.1f} s){_estimate(doc)}. "
        f"Measured on {meta.device_kind} ({meta.cpu}), jax {meta.versions.get('jax', '?')}, {meta.date}.",
    ]
    truth = doc.against
    if truth:
        ratio = truth.recommended_over_fastest
        lines += [
            "",
            f"Against the sweep `{truth.directory}` ({truth.seconds:.0f} s; the advice cost "
            f"{truth.cost_fraction:.2f} of it): its fastest batch size {truth.fastest} (fastest set "
            f"{truth.fastest_set}); the recommendation's measured seconds to target over the fastest's: "
            + (
                "not measured (not one of its batch sizes, or it missed the target)"
                if ratio is None
                else f"{ratio:.2f} {_ci(truth.recommended_over_fastest_interval).strip()}"
            )
            + ".",
        ]
    if doc.warmup_check:
        lines += ["", *warmup_lines(doc.warmup_check)]
    return "\n".join(lines) + "\n"


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
        f"trunk at lr {plan.learning_rate:g}, {plan.rule} rule, tolerance {plan.tolerance:g}):",
        "",
        "| trunk step | held-out loss | B* per seed | B* of the median losses | B_simple per seed |",
        "|---|---|---|---|---|",
    ]
    for e in result.checkpoints:
        stars = ", ".join(f"{b}{'+' if e.censored[s] else ''}" for s, b in e.b_star.items())
        simple = ", ".join(f"{v:.3g}" for v in e.b_simple.values())
        loss = float(np.median(list(e.loss.values())))
        lines.append(f"| {e.step} | {loss:.4g} | {stars} | {e.b_star_median:g} | {simple} |")
    lines += ["", "'+': the largest batch size tried was within the tolerance (a lower bound)."]
    return lines


def _interval(ci: list[float]) -> str:
    return f"[{ci[0]:.3g}, {ci[1]:.3g}]"


def _spread_text(x: Spread) -> str:
    if not x.n:
        return f"not reached (0 of {x.of})"
    missed = f", {x.of - x.n} of {x.of} missed" if x.n < x.of else ""
    return f"{x.mean:.4g} {_interval(x.interval)}{missed}"


def _ratio(x) -> str:
    return f"{x.ratio:.3g} {_interval(x.ratio_interval)}" if x.ratio is not None else "-"


def warmup_lines(check: WarmupCheck) -> list[str]:
    """The warm-up check as a sentence, a table (warm-up, fixed, their ratio) and its verdict."""
    steps, secs, final = check.steps_to_target, check.seconds_to_target, check.final
    ref = check.reference["batch_size"]
    phases = " -> ".join(f"{p.batch_size} x {p.steps} (lr {p.learning_rate:g})" for p in check.phases)
    goal = f"{check.metric} {'>=' if check.higher_is_better else '<='} {check.target:g}"
    return [
        f"The warm-up trained to the target ({goal}) on {len(check.seeds)} seeds, each phase at the sweep's "
        f"best learning rate for its batch size, for the examples the sweep's B = {ref} run saw: {phases}.",
        "",
        f"| | steps to target | seconds to target | final {check.metric} |",
        "|---|---|---|---|",
        *(
            f"| {label} | {_spread_text(getattr(steps, k))} | {_spread_text(getattr(secs, k))} | "
            f"{_spread_text(getattr(final, k))} |"
            for label, k in (("warm-up", "warmup"), (f"fixed B = {ref}", "fixed"))
        ),
        f"| warm-up / fixed | {_ratio(steps)} | {_ratio(secs)} | |",
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
    if mine.n < mine.of:
        outcome = "more"  # a seed never reached the target within the budget
    elif mine.interval[1] < theirs.interval[0]:
        outcome = "fewer"
    elif mine.interval[0] > theirs.interval[1]:
        outcome = "more"
    else:
        outcome = "tie"
    (a_lo, a_hi), (b_lo, b_hi) = check.final.warmup.interval, check.final.fixed.interval
    worse = (a_hi < b_lo) if check.higher_is_better else (a_lo > b_hi)
    return outcome + (", worse final" if worse else "")


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
    b_crit = f"{_g(truth.b_crit)}{_ci(truth.b_crit_interval)}"
    star = f"{doc.b_crit:.3g}{'+' if doc.b_crit_censored else ''}"
    phases = " -> ".join(f"{p.batch_size}" + (f" x {p.steps}" if p.steps else "") for p in doc.warmup)
    cells = [
        name,
        f"{doc.cost.total:.0f} s / {truth.seconds:.0f} s = {_g(cost)}",
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
    "advice cost / sweep cost",
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
        v = verdict(check)
        outcomes.append("holds" if v == "fewer" else "tie" if v == "tie" else "does not hold")
        steps = check.steps_to_target
        phases = " -> ".join(str(p.batch_size) for p in check.phases)
        parts.append(
            f"{name}: warm-up {phases} vs fixed B = {check.reference['batch_size']}: steps "
            f"{_g(steps.warmup.mean)} vs {_g(steps.fixed.mean)}, ratio {_g(steps.ratio)}"
            f"{_ci(steps.ratio_interval)} ({v})"
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
