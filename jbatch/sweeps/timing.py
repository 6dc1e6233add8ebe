"""Single-model time per step, measured so that batch sizes can be compared: every batch
size's compiled epoch is timed in interleaved rounds (round-robin, after the sweep's
training, compile apart), every round is kept, and the median carries a 95% interval.

Also the demonstration behind claim C11: a plain ``jax.jit`` step compiles once per batch
shape, jbatch's padded epoch once (its rounds compile nothing).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import jax
import numpy as np

from jbatch.analysis.stats import median_interval
from jbatch.core.batching import epoch_batches, epoch_order, steps_per_epoch
from jbatch.core.engine import CompileCounter, jit, timed_call
from jbatch.core.epoch import make_epoch
from jbatch.core.loss import LossFn
from jbatch.core.step import Batch, TrainState, make_train_step
from jbatch.errors import check_interrupt


def time_steps(
    init_state: Callable[[], TrainState],
    loss_fn: LossFn,
    train: tuple[Any, Any],
    sizes: list[int],
    rounds: int,
    remainder: str = "keep",
    max_steps: int | Mapping[int, int] = 256,
    microbatch: int | None = None,
) -> dict[int, dict[str, Any]]:
    """Seconds per epoch of one model at every batch size in ``sizes``, ``rounds`` rounds
    interleaved: round r times one epoch of each size, starting at a different size each
    round (``r mod len(sizes)``), so slow phases of a shared machine fall on all of them.

    An epoch longer than ``max_steps`` (per batch size, when a mapping) is timed on the first
    ``max_steps * B`` examples of its order (a step's cost does not depend on N, and timing a
    sweep must stay cheaper than its training); ``epoch_seconds`` are then per ``timed_steps``, scaled to the epoch by
    ``step_timing``.

    Each size's epoch is a ``jax.jit`` program (jbatch's compiler options); its first call
    compiles and runs once (kept apart, as ``first_call_seconds``). Compilations are
    counted for the first call and for the rounds: claim C11's padded epoch compiles once
    whatever the partial last batch, so the rounds must compile nothing."""
    n = int(train[0].shape[0])
    programs, out = {}, {}
    orders = [epoch_order(0, r, n) for r in range(rounds + 1)]
    for b in sizes:
        spe = steps_per_epoch(n, b, remainder)
        cap = max_steps if isinstance(max_steps, int) else max_steps[b]
        m = n if spe <= cap else cap * b  # rows timed: a whole epoch, or cap full batches
        epoch = jit(make_epoch(make_train_step(loss_fn, microbatch), m, b, remainder=remainder), donate_argnums=(0,))
        state = jax.block_until_ready(init_state())
        cut = [jax.device_put(o[:m]) for o in orders]
        with CompileCounter() as first:
            (state, _), seconds = timed_call(epoch, state, train, cut[0])
        programs[b] = [epoch, state, cut]
        out[b] = {"steps_per_epoch": spe, "timed_steps": steps_per_epoch(m, b, remainder), "epoch_seconds": [],
                  "first_call_seconds": seconds, "first_call_compilations": first.count}  # fmt: skip
    with CompileCounter() as during:
        for r in range(rounds):
            check_interrupt()  # a Ctrl-C a library swallowed: stop between rounds
            for i in range(len(sizes)):
                b = sizes[(r + i) % len(sizes)]
                epoch, state, cut = programs[b]
                (state, _), seconds = timed_call(epoch, state, train, cut[r + 1])
                programs[b][1] = state
                out[b]["epoch_seconds"].append(seconds)
    for b in sizes:
        out[b]["round_compilations"] = during.count  # over every size's rounds together
    return out


def step_timing(timed: dict[str, Any], level: float = 0.95) -> dict[str, Any]:
    """Seconds per step (median of the rounds) with its interval, and the epoch's."""
    steps = timed.get("timed_steps", timed["steps_per_epoch"])
    median = float(np.median(timed["epoch_seconds"]))
    lo, hi = median_interval(timed["epoch_seconds"], level)
    return {"seconds_per_step": median / steps, "seconds_per_step_interval": [lo / steps, hi / steps],
            "seconds_per_epoch": median / steps * timed["steps_per_epoch"], "rounds": len(timed["epoch_seconds"]),
            "timed_steps": steps}  # fmt: skip


def shape_demo(init_state: Callable[[], TrainState], loss_fn: LossFn, train: tuple[Any, Any], batch_size: int,
               remainder: str = "keep") -> dict[str, Any]:  # fmt: skip
    """Claim C11, the other half (``time_steps`` has jbatch's padded epoch): compilations of a
    plain ``jax.jit`` step fed an epoch's batches as they come, the last one unpadded (hence
    smaller when B does not divide N): the first two batches and the last (counted, never
    timed)."""
    x, y = train
    n = int(x.shape[0])
    idx, mask = epoch_batches(epoch_order(0, 0, n), batch_size, remainder)
    picked = sorted({0, min(1, len(idx) - 1), len(idx) - 1})
    batches = [Batch(x[idx[i][mask[i]]], y[idx[i][mask[i]]]) for i in picked]  # unpadded
    state = jax.block_until_ready((init_state(), batches))[0]
    step = jax.jit(make_train_step(loss_fn))
    with CompileCounter() as plain:
        for b in batches:
            state, _ = step(state, b)
        jax.block_until_ready(state)
    shapes = sorted({int(mask.sum(1)[i]) for i in range(len(idx))})  # every batch size of the epoch
    return {"batch_shapes": shapes, "plain_step_compilations": plain.count}
