"""Verdicts on the tutorial's claims C1-C11, computed from sweep JSON documents alone.

Each claim gets a verdict (holds / does not hold / holds only when ...), the numbers
behind it and the plot that shows it. The first document is the primary workload; C10
compares all of them. ``jbatch claims`` writes ``results/claims.md``.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from jbatch.batching import last_batch_size, steps_per_epoch
from jbatch.report import load_document, summarize
from jbatch.store import write_text
from jbatch.summary import sweep_fit

Verdict = tuple[str, str, str]  # (verdict, numbers, plot)


class Sweep:
    """One sweep document with its per-batch-size summaries and trade-off fit."""

    def __init__(self, directory: Path, doc: dict[str, Any]):
        self.directory, self.doc = directory, doc
        self.rows = summarize(doc)
        self.fit = sweep_fit(self.rows)
        self.n = doc["num_train"]

    @property
    def name(self) -> str:
        return self.doc["name"]

    def result(self, b: int) -> dict[str, Any]:
        return self.doc["batch_sizes"][str(b)]

    def row(self, b: int) -> dict[str, Any]:
        return next(s["row"] for s in self.rows if s["row"]["batch_size"] == b)

    @property
    def sizes(self) -> list[int]:
        return [s["row"]["batch_size"] for s in self.rows]

    def plot(self, name: str) -> str:
        return f"[{name}]({self.directory.name}/{name})"

    def best_curves(self, b: int) -> list[dict[str, Any]]:
        lr = self.row(b)["best_learning_rate"]
        return [r["curve"] for r in self.result(b)["replicas"] if r["learning_rate"] == lr and not r["diverged"]]

    def oscillation(self, b: int) -> float:
        """Share of the training loss's movement that goes uphill between evaluations, at
        the best learning rate (mean over seeds): 0 is a monotone descent, 0.5 a random walk."""
        values = []
        for c in self.best_curves(b):
            logs = np.log(np.asarray([v for v in c["train_loss"] if v is not None and v > 0], float))
            moves = np.diff(logs)
            if moves.size and np.abs(moves).sum() > 0:
                values.append(float(np.clip(moves, 0, None).sum() / np.abs(moves).sum()))
        return float(np.mean(values)) if values else math.nan

    def mean(self, b: int, key: str) -> float | None:
        return self.row(b)[key]["mean"]


def _g(v: float | None) -> str:
    return "-" if v is None or (isinstance(v, float) and not math.isfinite(v)) else f"{v:.3g}"


def c1(s: Sweep) -> Verdict:
    ok = [(b, s.result(b)["examples_per_epoch"] == s.n, s.result(b)["steps_per_epoch"] == steps_per_epoch(s.n, b))
          for b in s.sizes]  # fmt: skip
    holds = all(e and st for _, e, st in ok) and s.doc["config"]["remainder"] == "keep"
    return ("holds" if holds else "does not hold",
            f"every recorded epoch of every batch size consumed all {s.n} training examples in ceil(N/B) updates; "
            "train and test metrics are evaluated at every epoch end (and between, on a step cadence)",
            s.plot("loss_curves.png"))  # fmt: skip


def c2(s: Sweep) -> Verdict:
    epochs = {b: s.mean(b, "epochs_to_target") for b in s.sizes}
    enough = [b for b, e in epochs.items() if e is not None and e <= 1]
    more = [b for b, e in epochs.items() if e is None or e > 1]
    nums = ", ".join(f"B={b}: {_g(e)}" for b, e in epochs.items())
    if not enough:
        verdict = "holds"
    elif not more:
        verdict = "does not hold"
    else:
        verdict = f"holds only when B >= {min(more)}: at B <= {max(enough)} one epoch already reaches the target"
    return verdict, f"epochs to target at the best learning rate: {nums}", s.plot("loss_curves.png")


def c3(s: Sweep) -> Verdict:
    full = s.n
    if full not in s.sizes:
        return "not measured (no full-batch run)", "-", "-"
    per_step = {b: s.result(b)["timing"]["seconds_per_step"] for b in s.sizes}
    secs = {b: s.mean(b, "seconds_to_target") for b in s.sizes}
    fastest = min((b for b in s.sizes if secs[b] is not None), key=lambda b: secs[b], default=None)
    cost = per_step[full] / per_step[min(s.sizes)]
    slow = secs[full] is None or (fastest is not None and secs[full] > 1.5 * secs[fastest])
    nums = (f"one full-batch update costs {_g(per_step[full] * 1e3)} ms, {cost:.0f}x a B={min(s.sizes)} update; "
            f"seconds to target {_g(secs[full])} vs {_g(secs.get(fastest))} at the fastest batch size B={fastest}; "
            "every update needs all N examples, so it cannot learn online")  # fmt: skip
    verdict = "holds" if cost > 2 and slow else ("holds only in cost per update: training is not slower" if cost > 2
                                                 else "does not hold")  # fmt: skip
    return verdict, nums, s.plot("seconds_to_target.png")


def c4(s: Sweep) -> Verdict:
    if 1 not in s.sizes:
        return "not measured (no B=1 run)", "-", "-"
    others = [b for b in s.sizes if b > 1]
    osc1, osc = s.oscillation(1), float(np.nanmedian([s.oscillation(b) for b in others]))
    per_step = {b: s.result(b)["timing"]["seconds_per_step"] for b in s.sizes}
    secs = {b: s.mean(b, "seconds_to_target") for b in s.sizes}
    fast_updates = per_step[1] == min(per_step.values())
    wanders = osc1 > 1.5 * osc
    poor = secs[1] is None or any(secs[b] is not None and secs[b] < secs[1] for b in others)
    nums = (f"B=1 updates take {_g(per_step[1] * 1e6)} us (fastest: {fast_updates}); oscillation of the training loss "
            f"{osc1:.2f} at B=1 vs median {osc:.2f} for B>1; seconds to target {_g(secs[1])} at B=1 vs "
            f"{_g(min((v for v in secs.values() if v is not None), default=None))} best")  # fmt: skip
    parts = [p for p, ok in (("updates are fast", fast_updates), ("it oscillates more", wanders),
                             ("it converges slower than a mini-batch", poor)) if ok]  # fmt: skip
    verdict = (
        "holds" if len(parts) == 3 else ("does not hold" if not parts else "holds only partly: " + ", ".join(parts))
    )
    return verdict, nums, s.plot("loss_curves.png")


def c5(s: Sweep) -> Verdict:
    secs = {b: s.mean(b, "seconds_to_target") for b in s.sizes}
    reached = [b for b in s.sizes if secs[b] is not None]
    if not reached:
        return "not measured (no batch size reached the target)", "-", "-"
    best = min(reached, key=lambda b: secs[b])
    mini = 1 < best < s.n
    nums = f"fastest to target: B={best} ({_g(secs[best])} s); " + ", ".join(f"B={b}: {_g(secs[b])}" for b in s.sizes)
    return ("holds" if mini else f"does not hold: the fastest is B={best}"), nums, s.plot("seconds_to_target.png")


def c6(s: Sweep) -> Verdict:
    recorded = {b: s.result(b)["steps_per_epoch"] for b in s.sizes}
    ok = all(v == math.ceil(s.n / b) for b, v in recorded.items())
    examples = (f"Keras' examples with jbatch's counter: (2000, 500) -> {steps_per_epoch(2000, 500)}; (1797, 500) -> "
                f"{steps_per_epoch(1797, 500)}, the last of {last_batch_size(1797, 500)}")  # fmt: skip
    nums = ", ".join(f"B={b}: {v}" for b, v in recorded.items()) + f" updates per epoch (N={s.n}). " + examples
    return ("holds (with a partial last batch: ceil(N/B))" if ok else "does not hold"), nums, "-"


def _trend(values: list[float | None], falling: bool, slack: float = 1.1) -> bool:
    v = [x for x in values if x is not None and math.isfinite(x)]
    pairs = zip(v[:-1], v[1:], strict=False)
    return all(b <= a * slack for a, b in pairs) if falling else all(b * slack >= a for a, b in pairs)


def c7(s: Sweep) -> Verdict:
    if s.fit is None:
        return "not measured (no trade-off fit)", "-", "-"
    small = [b for b in s.sizes if b <= max(s.fit["b_crit"], min(s.sizes[1:], default=1))]
    per_epoch = [s.result(b)["timing"]["seconds_per_epoch"] for b in small]
    osc = [s.oscillation(b) for b in small]
    # Endpoints, smallest B against the largest B <= B_crit, with 10% to spare: one noisy
    # timing in the middle of the range must not decide the verdict.
    faster, calmer = per_epoch[-1] * 1.1 < per_epoch[0], osc[-1] * 1.1 < osc[0]
    nums = (f"for B up to B_crit={_g(s.fit['b_crit'])} ({small}): seconds per epoch {[_g(x) for x in per_epoch]}, "
            f"oscillation {[_g(x) for x in osc]}; judged from B={small[0]} to B={small[-1]}")  # fmt: skip
    if faster and calmer:
        verdict = "holds"
    else:
        verdict = (
            "holds only for speed per epoch"
            if faster
            else ("holds only for oscillation" if calmer else "does not hold")
        )
    return verdict, nums, s.plot("steps_to_target.png")


def c8(s: Sweep) -> Verdict:
    if s.fit is None:
        return "not measured (no trade-off fit)", "-", "-"
    big = [b for b in s.sizes if b >= s.fit["b_crit"] and s.mean(b, "steps_to_target") is not None]
    if len(big) < 2:
        return f"not measured (fewer than 2 batch sizes above B_crit={_g(s.fit['b_crit'])})", "-", "-"
    epochs = [s.mean(b, "epochs_to_target") for b in big]
    steps = [s.mean(b, "steps_to_target") for b in big]
    gain = steps[0] / steps[-1]
    scale = big[-1] / big[0]
    holds = _trend(epochs, False) and gain < scale / 4
    nums = (f"above B_crit={_g(s.fit['b_crit'])}: B {big}, epochs to target {[_g(e) for e in epochs]}, steps to "
            f"target {[_g(x) for x in steps]}: {scale:.0f}x the batch buys {gain:.2f}x fewer steps")  # fmt: skip
    return ("holds" if holds else "does not hold"), nums, s.plot("tradeoff.png")


def c9(s: Sweep) -> Verdict:
    over, rows = [], []
    for b in s.sizes:
        r = s.row(b)
        rise, at, end = r["test_loss_rise"]["mean"], r["epoch_of_min_test_loss"]["mean"], s.result(b)["budget_steps"]
        minimum = r["min_test_loss"]["mean"]
        overfits = rise is not None and minimum and rise > 0.05 * minimum
        over.append(overfits)
        rows.append(f"B={b}: min test loss at epoch {_g(at)} of {_g(end / s.result(b)['steps_per_epoch'])}, "
                    f"then +{_g(rise)}")  # fmt: skip
    verdict = ("holds" if all(over) else "does not hold" if not any(over) else
               "holds only when the run is long enough to overfit: " +
               ", ".join(f"B={b}" for b, o in zip(s.sizes, over, strict=True) if o))  # fmt: skip
    return verdict, "; ".join(rows) + " (final train loss keeps falling: see the table)", s.plot("loss_curves.png")


def c10(sweeps: list[Sweep]) -> Verdict:
    parts, differ = [], False
    for sw in sweeps:
        secs = {b: sw.mean(b, "seconds_to_target") for b in sw.sizes}
        reached = [b for b in sw.sizes if secs[b] is not None]
        best = min(reached, key=lambda b: secs[b]) if reached else None
        crit = sw.fit["b_crit"] if sw.fit else None
        parts.append((sw.name, best, crit, {b: sw.row(b)["best_learning_rate"] for b in sw.sizes}))
    if len(parts) > 1:
        bests = {p[1] for p in parts}
        crits = [p[2] for p in parts if p[2]]
        differ = len(bests) > 1 or (len(crits) > 1 and max(crits) / min(crits) > 2)
    nums = "; ".join(f"{n}: fastest B={b}, B_crit={_g(c)}, best LR per B {lrs}" for n, b, c, lrs in parts)
    if len(parts) < 2:
        verdict = "not shown: only one workload"
    else:
        verdict = "holds: the best settings differ between workloads" if differ else "does not hold: they agree"
    return verdict, nums, " ".join(sw.plot("best_lr.png") for sw in sweeps)


def c11(s: Sweep) -> Verdict:
    counts = {b: (s.result(b).get("programs"), s.result(b).get("compilations_during_training")) for b in s.sizes}
    if any(c[1] is None for c in counts.values()):
        return "not measured (no compile counters in this document)", "-", "-"
    partial = [b for b in s.sizes if s.n % b]
    ok = all(p == 1 and c == 0 for p, c in counts.values())
    nums = (f"one compiled training program per batch size and {sum(c for _, c in counts.values())} compilations "
            f"while training, although B={partial} end each epoch with a partial batch (padded to B and masked); "
            "an unpadded last batch would be a second shape, hence a second compilation")  # fmt: skip
    return ("holds: a compiled step is specialised to one batch shape" if ok else "does not hold"), nums, "-"


CLAIMS: dict[str, Callable[..., Verdict]] = {
    "C1": c1, "C2": c2, "C3": c3, "C4": c4, "C5": c5, "C6": c6, "C7": c7, "C8": c8, "C9": c9, "C11": c11,
}  # fmt: skip


def verdicts(sweeps: list[Sweep]) -> dict[str, Verdict]:
    """Every claim's verdict; C10 across all sweeps, the others on the first (primary)."""
    out = {cid: fn(sweeps[0]) for cid, fn in CLAIMS.items()}
    out["C10"] = c10(sweeps)
    return dict(sorted(out.items(), key=lambda kv: int(kv[0][1:])))


def write_claims(directories: list[str | Path], out: str | Path) -> Path:
    """Writes the claims report from the sweep directories (first one primary)."""
    sweeps = [Sweep(Path(d), load_document(d)) for d in directories]
    lines = ["# The tutorial's claims, measured", "",
             f"Generated by `jbatch claims` from {', '.join(f'`{s.directory.name}/sweep.json`' for s in sweeps)} "
             f"alone. Primary workload: `{sweeps[0].name}`. Oscillation = share of the training loss's movement "
             "between evaluations that goes uphill (0: monotone descent; 0.5: a random walk), at each batch "
             "size's best learning rate.", "",
             "| claim | verdict | numbers | plot |", "|---|---|---|---|"]  # fmt: skip
    for cid, (verdict, nums, plot) in verdicts(sweeps).items():
        lines.append(f"| {cid} | {verdict} | {nums} | {plot} |")
    return write_text(out, "\n".join(lines) + "\n")
