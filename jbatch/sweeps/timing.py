"""Single-model time per step, measured so that batch sizes can be compared: every batch
size's compiled epoch is timed in interleaved rounds (round-robin, after the sweep's
training, compile apart), every round is kept, and the median carries a 95% interval.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import Any

import jax
import numpy as np

from jbatch.analysis.stats import median_interval
from jbatch.core.batching import epoch_order, steps_per_epoch
from jbatch.core.engine import timed_call
from jbatch.core.step import TrainState
from jbatch.errors import check_interrupt
from jbatch.results.records import Timing


def time_steps(
    session: Any,
    sizes: list[int],
    rounds: int,
    max_steps: int | Mapping[int, int] = 256,
    init: Callable[[], TrainState] | None = None,
) -> dict[int, dict[str, Any]]:
    """Seconds per epoch of one model (``init()``, default the session's seed-0 model) at
    every batch size in ``sizes``, ``rounds`` rounds interleaved: round r times one epoch of
    each size, starting at a different size each round (``r mod len(sizes)``), so slow
    phases of a shared machine fall on all of them.

    An epoch longer than ``max_steps`` (per batch size, when a mapping) is timed on the first
    ``max_steps * B`` examples of its order (a step's cost does not depend on N, and timing a
    sweep must stay cheaper than its training); ``epoch_seconds`` are then per
    ``timed_steps``, scaled to the epoch by ``step_timing``.

    Each size's epoch is the session's compiled program (``Session.epoch``: compiled ahead of
    time, so a round cannot recompile); building it and its first call are kept apart
    (``first_call_seconds``)."""
    init = init or (lambda: session.fresh(0))
    n = int(session.train[0].shape[0])
    remainder = session.config.training.remainder
    programs, out = {}, {}
    orders = [epoch_order(0, r, n) for r in range(rounds + 1)]
    for b in sizes:
        spe = steps_per_epoch(n, b, remainder)
        cap = max_steps if isinstance(max_steps, int) else max_steps[b]
        m = n if spe <= cap else cap * b  # rows timed: a whole epoch, or cap full batches
        state = jax.block_until_ready(init())
        cut = [jax.device_put(o[:m]) for o in orders]
        start = time.perf_counter()
        epoch = session.epoch(state, m, b, cut[0])
        state, _ = jax.block_until_ready(epoch(state, session.train, cut[0]))  # sync point: the clock reads after it
        seconds = time.perf_counter() - start
        programs[b] = [epoch, state, cut]
        out[b] = {
            "steps_per_epoch": spe,
            "timed_steps": steps_per_epoch(m, b, remainder),
            "epoch_seconds": [],
            "first_call_seconds": seconds,
        }
    for r in range(rounds):
        check_interrupt()  # a Ctrl-C a library swallowed: stop between rounds
        for i in range(len(sizes)):
            b = sizes[(r + i) % len(sizes)]
            epoch, state, cut = programs[b]
            (state, _), seconds = timed_call(epoch, state, session.train, cut[r + 1])
            programs[b][1] = state
            out[b]["epoch_seconds"].append(seconds)
    return out


def step_timing(timed: dict[str, Any], level: float = 0.95) -> Timing:
    """Seconds per step (median of the rounds) with its interval, the epoch's, every round
    and the first call."""
    steps = timed.get("timed_steps", timed["steps_per_epoch"])
    median = float(np.median(timed["epoch_seconds"]))
    lo, hi = median_interval(timed["epoch_seconds"], level)
    return Timing(
        seconds_per_step=median / steps,
        seconds_per_step_interval=[lo / steps, hi / steps],
        seconds_per_epoch=median / steps * timed["steps_per_epoch"],
        rounds=len(timed["epoch_seconds"]),
        timed_steps=steps,
        epoch_seconds=list(timed["epoch_seconds"]),
        first_call_seconds=timed["first_call_seconds"],
    )
