"""The batch size each rule people use would pick, measured on a finished sweep (issue 33): what
``jbatch advise`` is compared with. From an advice run ``--against`` a sweep (its document alone:
the sweep's measured seconds and steps to target per batch size are in ``against``):

- ``fits``: the largest batch that fits in memory (PyTorch Lightning's
  ``Tuner.scale_batch_size(mode="binsearch")``, accelerate's ``find_executable_batch_size``;
  no learning rate, no convergence): the advice's probe (``sweeps.fits``: on an
  accelerator a real out-of-memory binary search, on a CPU XLA's memory plan within a stated
  capacity), its largest candidate within the margin; an advice without a probe or capacity
  (a CPU: every candidate fits in the host's memory) picks the largest candidate.
- ``throughput``: DeepSpeed's autotuner, the batch size of most training samples per second
  (the sweep's timing rounds).
- ``playbook``: Google's tuning playbook, the largest batch size that still reduces the
  number of steps to the target: up the sweep's batch sizes while each one's mean steps to
  target is below the previous one's (every seed reaching it).
- ``noise``: McCandlish et al. 2018's noise scale ``B_simple`` averaged along training (the
  advice's probe), the candidate nearest on a log scale.
- ``default``: B = 32, the common default, the candidate nearest on a log scale.
- ``advise``: ``jbatch advise``'s recommendation.

Each pick's measured seconds to target over the sweep's fastest batch size's, with the
interval of that ratio from the two 95% intervals over the sweep's seeds; a pick that missed
the target on some seed is "missed".
"""

from __future__ import annotations

import math
from typing import Any

from jbatch.analysis.stats import bounds, ratio_interval

RULES = {
    "fits": "largest that fits (Lightning, accelerate)",
    "throughput": "most samples/s (DeepSpeed autotuner)",
    "playbook": "playbook: largest that still cuts steps",
    "noise": "noise scale B_simple (McCandlish)",
    "default": "B = 32",
    "advise": "jbatch advise",
}
DEFAULT = 32


def machine(meta: Any) -> str:
    """The machine a document was measured on, as costs are compared: the CPU model (or the
    accelerator's kind) and its core count."""
    kind = meta.cpu if meta.device_kind == "cpu" else meta.device_kind
    return f"{kind} x {meta.cpu_count}" if meta.cpu_count else str(kind)


def nearest(candidates: list[int], value: float) -> int:
    """The candidate nearest ``value`` on a log scale (the smaller on a tie).

    Examples:
      >>> nearest([1, 8, 64, 512], 32), nearest([1, 8, 64, 512], 20)
      (64, 8)
    """
    return min(sorted(candidates), key=lambda b: abs(math.log(b / max(value, 1e-12))))


def playbook(steps: dict[int, float], candidates: list[int]) -> int | None:
    """The largest batch size that still reduces the steps to target: from the smallest
    candidate that reached it on every seed, up while the next one reached it in fewer mean
    steps. None when none reached it.

    Examples:
      >>> playbook({1: 1000.0, 8: 150.0, 64: 40.0, 512: 45.0}, [1, 8, 64, 512, 4000])
      64
    """
    pick = None
    for b in sorted(candidates):
        if b not in steps:
            if pick is None:
                continue
            break
        if pick is not None and not steps[b] < steps[pick]:
            break
        pick = b
    return pick


def picks(doc: Any) -> dict[str, int | None]:
    """Each rule's batch size for the advice ``doc`` (run ``--against`` a sweep); None where the
    document lacks what the rule needs, or no batch size qualifies."""
    truth = doc.against
    steps = {int(b): v for b, v in truth.steps_to_target.items() if truth.reached[b][0] == truth.reached[b][1]}
    sizes = sorted(int(b) for b in truth.reached) or list(doc.candidates)
    rate = truth.samples_per_second
    return {
        "fits": doc.fits.pick if doc.fits and doc.fits.pick is not None else max(sizes),
        "throughput": None if not rate else int(max(rate, key=rate.__getitem__)),
        "playbook": playbook(steps, sizes),
        "noise": nearest(sizes, doc.b_simple_along_training),
        "default": nearest(sizes, DEFAULT),
        "advise": doc.recommended,
    }


def measured(doc: Any, b: int | None) -> dict[str, Any]:
    """Batch size ``b``'s measured seconds to target over the sweep's fastest, with the
    interval (None where it missed the target on a seed or was not swept)."""
    truth = doc.against
    reached = truth.reached.get(str(b))
    out = {"batch_size": b, "ratio": None, "interval": None, "missed": b is not None and bool(reached)}
    if b is None or str(b) not in truth.seconds_to_target or not reached or reached[0] < reached[1]:
        return out
    out["missed"] = False
    out["ratio"] = truth.seconds_to_target[str(b)] / truth.seconds_to_target[str(truth.fastest)]
    mine, best = truth.seconds_to_target_interval.get(str(b)), truth.seconds_to_target_interval.get(str(truth.fastest))
    if mine and best:
        lo, hi = ratio_interval(_positive(mine), _positive(best))
        out["interval"] = [lo, hi if math.isfinite(hi) else None]
    return out


def _positive(interval: list[float | None]) -> tuple[float, float]:
    """Seconds to target: an unbounded lower end is 0."""
    lo, hi = bounds(interval)
    return max(lo, 0.0), hi


def worse(doc: Any, b: int, other: int | None) -> bool:
    """Whether ``b``'s seconds to target are above ``other``'s beyond the two intervals over
    the sweep's seeds (a pick that missed the target is worse than one that reached it)."""
    truth = doc.against
    mine, theirs = measured(doc, b), measured(doc, other)
    if other is None or theirs["ratio"] is None:
        return False
    if mine["ratio"] is None:
        return True
    a, c = truth.seconds_to_target_interval.get(str(b)), truth.seconds_to_target_interval.get(str(other))
    return bool(a and c) and bounds(a)[0] > bounds(c)[1]
