"""Seesaw (Meterez et al. 2025), the advice's second schedule candidate: wherever the run's
learning-rate schedule would halve the learning rate, Seesaw doubles the batch size and
multiplies the learning rate by ``1/sqrt(2)`` instead, so the run sees the same examples in
fewer steps (their proof: equivalent for SGD on noisy linear regression while the batch is
below the critical batch size; their measurement: cosine's loss at equal FLOPs in about 36%
less serial time on 150M-600M transformers).

Here the base run is the fixed recommendation ``B`` over its budget of ``S`` steps with the
sweep's schedule (``core.optim.schedule_factor``, which counts steps of one batch size); the
halvings are read off that schedule in the run's examples, and phase ``k`` (after the
``k``-th halving) trains at ``B * 2**k`` (at most the largest candidate) for the examples the
base run spends there. A schedule that never halves (constant) gives no candidate.

The prediction is the batch-size warm-up's (``advise.warmup_prediction``): each phase's base
steps times ``predicted_ratio(B_k, B, B*)`` at each seed's last B* (beyond the trunk's span
no later B* is measured; B* grows along training, so this errs against Seesaw), times the
seconds per step at ``B_k`` (log-log between the timed candidates), over the fixed run's
seconds. Its learning rate in training (``rates``): the sweep's best at ``B`` times
``sqrt(B_k / B)``, times the base schedule's factor at the phase's first example over the
step-counted schedule's factor at its first step, so each phase starts at Seesaw's
learning rate although the step-counted schedule runs over fewer steps.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from jbatch.core.optim import schedule_factor
from jbatch.core.phases import Phase
from jbatch.results import records

GRID = 4096  # points on which the schedule's halvings are read


def factors(kind: str, warmup: float, final: float, progress: np.ndarray) -> np.ndarray:
    """``schedule_factor`` at fractions ``progress`` of a run (numpy in, numpy out)."""
    return np.asarray(schedule_factor(np.asarray(progress * GRID), np.asarray(float(GRID)), kind, warmup, final))


def halvings(kind: str, warmup: float, final: float) -> list[float]:
    """The fractions of a run at which the schedule's factor first falls to ``1/2``, ``1/4``,
    ... of its peak after the peak (none for a constant schedule).

    Examples:
      >>> [round(p, 3) for p in halvings("linear", 0.0, 0.0)][:5]  # 1 - 2**-k
      [0.5, 0.75, 0.875, 0.938, 0.969]
      >>> [round(p, 3) for p in halvings("cosine", 0.05, 0.1)]  # down to the final tenth
      [0.559, 0.746, 0.899]
      >>> halvings("constant", 0.05, 0.0)
      []
    """
    p = np.linspace(0.0, 1.0, GRID + 1)
    f = factors(kind, warmup, final, p)
    peak = int(np.argmax(f))
    out, level = [], 0.5 * f[peak]
    for i in range(peak, len(p)):
        if f[i] <= level and f[i] > 0:
            out.append(float(p[i]))
            while f[i] <= level:
                level /= 2
    return out


def seesaw_phases(
    batch_size: int, steps: int, ceiling: int, kind: str, warmup: float, final: float
) -> list[records.Phase]:
    """Seesaw's phases for the base run of ``steps`` at ``batch_size``: after each halving of
    the schedule, twice the batch size (at most ``ceiling``) for the examples the base run
    spends until the next one, its steps that many examples over its batch size (at least
    one), the last phase open (``steps`` 0: until the target).

    Examples:
      >>> [(p.batch_size, p.steps) for p in seesaw_phases(8, 1000, 32, "linear", 0.0, 0.0)]  # halvings at 50%, 75%
      [(8, 500), (16, 125), (32, 0)]
      >>> [(p.batch_size, p.steps) for p in seesaw_phases(8, 1000, 64, "constant", 0.0, 0.0)]
      [(8, 0)]
    """
    marks = [0.0] + halvings(kind, warmup, final) + [1.0]
    out: list[records.Phase] = []
    for k in range(len(marks) - 1):
        b = batch_size * 2**k
        if b > ceiling:
            break
        base_steps = (marks[k + 1] - marks[k]) * steps
        out.append(records.Phase(batch_size=b, steps=max(1, round(base_steps * batch_size / b))))
    out[-1] = records.Phase(batch_size=out[-1].batch_size, steps=0)
    return out


def interpolated(per_step: dict[int, float], b: int) -> float:
    """Seconds per step at ``b``, log-log between the timed batch sizes (the nearest one's
    beyond them).

    Examples:
      >>> interpolated({8: 1.0, 32: 4.0}, 16), interpolated({8: 1.0, 32: 4.0}, 64)
      (2.0, 4.0)
    """
    sizes = sorted(per_step)
    x = np.log(sizes)
    y = np.log([per_step[s] for s in sizes])
    return float(np.exp(np.interp(math.log(b), x, y)))


def prediction(
    phases: list[records.Phase], steps: int, b_stars: list[float], per_step: dict[int, float], ratio: Any
) -> list[float]:
    """Per seed (its B*), Seesaw's predicted seconds over those of the fixed run of ``steps``
    at the first phase's batch size (see the module's docstring); ``ratio(b, b0, b_crit)`` is
    ``advise.predicted_ratio``. A phase's base steps are its steps times its batch size over
    the first's; the open last phase's, the rest of ``steps``.

    Examples:
      >>> from jbatch.sweeps.advise import predicted_ratio
      >>> P = records.Phase
      >>> phases = [P(batch_size=8, steps=500), P(batch_size=16, steps=0)]
      >>> [round(r, 3) for r in prediction(phases, 1000, [1e9], {8: 1.0, 16: 1.0}, predicted_ratio)]
      [0.75]
      >>> [round(r, 3) for r in prediction(phases, 1000, [1e-3], {8: 1.0, 16: 1.0}, predicted_ratio)]  # B >> B*
      [1.0]
    """
    b = phases[0].batch_size
    out = []
    for crit in b_stars:
        seesaw, left = 0.0, float(steps)
        for p in phases:
            base = min(left, p.steps * p.batch_size / b) if p.steps else left
            left -= base
            seesaw += base * ratio(p.batch_size, b, crit) * interpolated(per_step, p.batch_size)
        out.append(seesaw / (steps * interpolated(per_step, b)))
    return out


def rates(phases: list[Phase], learning_rate: float, kind: str, warmup: float, final: float) -> list[float]:
    """Seesaw's learning rate per (planned, closed) phase: ``learning_rate`` (the base run's)
    times ``sqrt(B_k / B)``, times the base schedule's factor where the phase starts (in the
    base run's examples) over the step-counted schedule's factor at its first step (its
    budget: all the phases' steps), so that each phase starts where Seesaw puts it.

    Examples:
      >>> [round(r, 4) for r in rates([Phase(8, 500), Phase(16, 250)], 0.1, "constant", 0.0, 0.0)]  # sqrt(2) x
      [0.1, 0.1414]
    """
    b, total = phases[0].batch_size, sum(p.steps for p in phases)
    base_steps = sum(p.steps * p.batch_size / b for p in phases)
    out, steps, examples = [], 0, 0.0
    for p in phases:
        scale = math.sqrt(p.batch_size / b)
        if steps:
            wanted, counted = factors(kind, warmup, final, np.asarray([examples / base_steps, steps / total]))
            scale *= wanted / counted if counted > 0 else 1.0
        out.append(float(learning_rate * scale))
        steps, examples = steps + p.steps, examples + p.steps * p.batch_size / b
    return out
