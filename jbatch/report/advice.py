"""``jbatch advise`` checked against the truth: one row per workload whose advice was run
``--against`` its sweep (``advise-<name>/advise.json``), and Merrill et al. 2025's claim that a
batch-size warm-up reaches the target in fewer steps than the best fixed batch size without
losing final quality, judged on the warm-ups those advices trained (``warmup_check``).

The goals (issue 24): the advice costs at most ``COST_GOAL`` of the sweep it replaces, and its
recommendation's measured seconds to target are within ``PICK_GOAL`` of the sweep's fastest.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from jbatch.errors import ConfigError
from jbatch.store import read_json

COST_GOAL = 0.2
PICK_GOAL = 1.25
Verdict = tuple[str, str, str]


def verdict(check: dict[str, Any]) -> str:
    """``"fewer"`` when the warm-up's steps to target are below the reference's beyond the
    seeds' intervals (every seed reached the target), ``"more"`` when above (or a seed
    missed), else ``"tie"``; ``", worse final"`` added when the final values' intervals are
    apart in the reference's favour."""
    steps = check["steps_to_target"]
    mine, theirs = steps["warmup"], steps["fixed"]
    if mine["n"] < mine["of"]:
        outcome = "more"  # a seed never reached the target within the budget
    elif mine["interval"][1] < theirs["interval"][0]:
        outcome = "fewer"
    elif mine["interval"][0] > theirs["interval"][1]:
        outcome = "more"
    else:
        outcome = "tie"
    final = check["final"]
    (a_lo, a_hi), (b_lo, b_hi) = final["warmup"]["interval"], final["fixed"]["interval"]
    worse = (a_hi < b_lo) if check["higher_is_better"] else (a_lo > b_hi)
    return outcome + (", worse final" if worse else "")


def load_advice(directory: str | Path) -> dict[str, Any]:
    """The advice document of ``directory``, refused in one line unless it is one checked
    against a sweep."""
    path = Path(directory) / "advise.json"
    doc = read_json(path)
    if not isinstance(doc, dict) or doc.get("kind") != "jbatch.advise":
        raise ConfigError(f"{path} is not a jbatch advice document")
    if "against" not in doc:
        raise ConfigError(f"{path} was not run --against a sweep: nothing to check it with")
    return doc


def _g(v: float | None) -> str:
    return "-" if v is None else f"{v:.3g}"


def _ci(ci: list[float] | None) -> str:
    return "" if not ci else f" [{ci[0]:.3g}, {ci[1]:.3g}]"


def row(name: str, doc: dict[str, Any]) -> list[str]:
    """One workload's row of the table (see ``HEADER``)."""
    truth, check = doc["against"], doc.get("warmup_check")
    ratio = truth["recommended_over_fastest"]
    cost = truth["cost_fraction"]
    met = [f"cost {'yes' if cost is not None and cost <= COST_GOAL else 'no'}",
           f"pick {'yes' if ratio is not None and ratio <= PICK_GOAL else 'no'}"]  # fmt: skip
    b_crit = f"{_g(truth.get('b_crit'))}{_ci(truth.get('b_crit_interval'))}"
    star = f"{doc['b_crit']:.3g}{'+' if doc['b_crit_censored'] else ''}"
    phases = " -> ".join(f"{p['batch_size']}" + (f" x {p['steps']}" if p["steps"] else "") for p in doc["warmup"])
    cells = [name, f"{doc['cost']['total']:.0f} s / {truth['seconds']:.0f} s = {_g(cost)}",
             f"{doc['recommended']} (fastest {truth['fastest']}; tie set {truth['fastest_set']})",
             f"{_g(ratio)}{_ci(truth.get('recommended_over_fastest_interval'))}",
             f"{star} / {_g(doc['b_simple_along_training'])} / {b_crit}", phases]  # fmt: skip
    if check:
        steps, secs, final = check["steps_to_target"], check["seconds_to_target"], check["final"]
        cells += [f"{_g(steps.get('ratio'))}{_ci(steps.get('ratio_interval'))}",
                  f"{_g(secs.get('ratio'))}{_ci(secs.get('ratio_interval'))}",
                  f"{_g(final['warmup']['mean'])}{_ci(final['warmup']['interval'])} vs "
                  f"{_g(final['fixed']['mean'])}{_ci(final['fixed']['interval'])}", verdict(check)]  # fmt: skip
    else:
        cells += ["not trained"] * 3 + ["-"]
    return [*cells, ", ".join(met)]


HEADER = ["workload", "advice cost / sweep cost", "recommended B", "its seconds to target / the fastest's [95%]",
          "B* plateau / B_simple (advice) / sweep's B_crit [95%]", "warm-up (B x steps)",
          "warm-up steps / fixed [95%]", "warm-up seconds / fixed [95%]", "final metric: warm-up vs fixed [95%]",
          "steps verdict", "goals (cost <= 0.2, pick <= 1.25x)"]  # fmt: skip


def markdown_lines(advices: dict[str, dict[str, Any]]) -> list[str]:
    """The table of every workload's advice against its sweep, with how it was made."""
    from jbatch.report import table

    lines = ["Each advice is `jbatch advise --preset NAME --against results/NAME` (its own defaults): its cost in "
             "wall seconds against the sweep's, its recommendation's measured seconds to target over the sweep's "
             "fastest batch size's (the sweep's interleaved timing and seeds; 95% interval), the local critical "
             "batch size B* where it plateaus ('+': a lower bound) and the noise scale beside the sweep's fitted "
             "B_crit, and the warm-up it proposes trained to the sweep's target on the sweep's seeds, each phase at "
             "the sweep's best learning rate for its batch size, against the fastest fixed batch size (ratios of "
             "means over seeds, 95% intervals).", ""]  # fmt: skip
    return lines + table.markdown(HEADER, [row(name, doc) for name, doc in advices.items()])


def o6(advices: dict[str, dict[str, Any]]) -> Verdict:
    """A batch-size warm-up reaches the target in fewer steps than the best fixed batch size
    without losing final quality (Merrill et al. 2025): per workload ``warmup_check.verdict``
    ("fewer" holds; "more" or a worse final value does not; "tie" shows nothing)."""
    parts, outcomes = [], []
    for name, doc in advices.items():
        check = doc.get("warmup_check")
        if not check:
            continue
        v = verdict(check)
        outcomes.append("holds" if v == "fewer" else "tie" if v == "tie" else "does not hold")
        steps = check["steps_to_target"]
        phases = " -> ".join(str(p["batch_size"]) for p in check["phases"])
        parts.append(f"{name}: warm-up {phases} vs fixed B = {check['reference']['batch_size']}: steps "
                     f"{_g(steps['warmup']['mean'])} vs {_g(steps['fixed']['mean'])}, ratio {_g(steps.get('ratio'))}"
                     f"{_ci(steps.get('ratio_interval'))} ({v})")  # fmt: skip
    if not outcomes:
        return "not measured (no advice run --against a sweep)", "-", "-"
    n = len(outcomes)
    holds = outcomes.count("holds")
    verdict_text = ("holds" if holds == n else "does not hold" if outcomes.count("does not hold") == n else
                    f"not shown: a tie on all {n} workloads (the intervals over seeds overlap)"
                    if outcomes.count("tie") == n else
                    f"holds on {holds} of {n} workloads, does not on {outcomes.count('does not hold')}, "
                    f"ties on {outcomes.count('tie')}")  # fmt: skip
    return verdict_text, "; ".join(parts), " ".join(f"[advise.md](advise-{name}/advise.md)" for name in advices)
