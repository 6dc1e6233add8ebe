"""The largest batch size that fits in memory, found as the tools people use find it: PyTorch
Lightning's ``Tuner.scale_batch_size(mode="binsearch")`` doubles the batch size from a start
until a step runs out of memory, then bisects between the last size that ran and the first
that did not (``binsearch``); accelerate's ``find_executable_batch_size`` shrinks from the top.
Their users then meet "the batch it found ran out of memory later" (the evaluation, a
fragmenting allocator), so the pick here keeps a margin: the largest candidate at most
``margin`` of the largest batch that fits.

Whether a batch size fits (``probe``):

- on an accelerator, one training step at it runs: the session's step on that many examples
  of the training split, on the device; XLA's ``RESOURCE_EXHAUSTED`` (or any error that says
  out of memory) means it does not. A real out-of-memory probe.
- on a CPU with a stated capacity (``--memory-cap``): XLA's memory plan of that step's
  compiled program (``engine.memory_of``: arguments, the training split among them, outputs
  and temporaries) is within the capacity; a CPU process
  would swap or be killed by the kernel long before XLA said so, so the plan is what can be
  compared.
- on a CPU with none: every candidate fits (the host's memory), and nothing is probed.

Each probe compiles a program of its own size (not kept: ``Programs`` of its own) and is
timed into the advice's cost (``AdviceCost.memory``).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp

from jbatch.analysis.memory import planned
from jbatch.core.batching import epoch_order
from jbatch.core.engine import Programs
from jbatch.core.phases import partial_epoch_program
from jbatch.results import records
from jbatch.sweeps.session import Session

MARGIN = 0.9  # the pick: the largest candidate at most this fraction of the largest batch that fits
OUT_OF_MEMORY = ("RESOURCE_EXHAUSTED", "out of memory", "Out of memory", "OOM")


def binsearch(fits: Callable[[int], bool], start: int, limit: int) -> tuple[int | None, list[int]]:
    """Lightning's ``binsearch``: from ``start``, double while ``fits`` (up to ``limit``), then
    bisect between the last size that fit (or 0) and the first that did not. Returns the
    largest size found to fit (None: not even 1) and the sizes tried, in order.

    Examples:
      >>> binsearch(lambda b: b <= 37, 2, 1000)
      (37, [2, 4, 8, 16, 32, 64, 48, 40, 36, 38, 37])
      >>> binsearch(lambda b: True, 2, 100)  # everything fits: the limit
      (100, [2, 4, 8, 16, 32, 64, 100])
      >>> binsearch(lambda b: b <= 3, 8, 100)  # not even the start: down from it
      (3, [8, 4, 2, 3])
      >>> binsearch(lambda b: False, 2, 100)
      (None, [2, 1])
    """
    tried, low, high, b = [], 0, None, max(1, min(start, limit))
    while True:
        tried.append(b)
        if fits(b):
            low = b
        else:
            high = b
        if high is None:
            if b >= limit:
                return b, tried
            b = min(2 * b, limit)
            continue
        if high - low <= 1:
            return low or None, tried
        b = (low + high) // 2


def out_of_memory(error: BaseException) -> bool:
    """Whether ``error`` is a device running out of memory (XLA's ``RESOURCE_EXHAUSTED``)."""
    return isinstance(error, (jax.errors.JaxRuntimeError, MemoryError)) and any(
        word in str(error) for word in OUT_OF_MEMORY
    )


def _one_step(session: Session, batch_size: int, programs: Programs) -> Any:
    """One training step at ``batch_size`` on the session's training split: its compiled
    program (``core.phases.partial_epoch_program``, into ``programs``) and a runner."""
    state, data = session.fresh(0), session.train
    program = partial_epoch_program(programs, session.step, state, data, batch_size, session.config.training.remainder)
    order = jnp.asarray(epoch_order(0, 0, session.workload.data.num_train))
    at = lambda v: jnp.asarray(v, jnp.int32)  # noqa: E731
    return program, lambda: jax.block_until_ready(program(state, data, order, at(1), at(0)))


def planned_bytes(session: Session, batch_size: int) -> int:
    """XLA's planned bytes of one training step at ``batch_size`` (compiled, not run): its
    arguments, outputs and temporaries, less the outputs that alias arguments (XLA's CPU
    ``peak_memory`` leaves the temporaries out: 387 kB at B = 1 and at B = 300 on a 512-wide
    MLP whose temporaries grow from 5 kB to 1.3 MB)."""
    program, _ = _one_step(session, batch_size, Programs())
    return planned(program.memory) or 0


def runs(session: Session, batch_size: int) -> bool:
    """Whether one training step at ``batch_size`` runs on the session's device (False when it
    runs out of memory, compiling or running; any other error is raised)."""
    try:
        _, run = _one_step(session, batch_size, Programs())
        run()
    except Exception as e:  # only running out of memory is an answer
        if out_of_memory(e):
            return False
        raise
    return True


def probe(
    session: Session,
    candidates: list[int],
    capacity: float | None = None,
    margin: float = MARGIN,
    fits: Callable[[int], bool] | None = None,
) -> records.Fits:
    """The largest batch size that fits (see the module's docstring), searched from the smallest
    candidate up to the largest over ``margin`` (no more is needed to pick) or the training
    split's size, and the pick: the largest candidate at most ``margin`` of it. ``capacity``: bytes, the
    stated cap on a CPU. ``fits``: whether a batch size fits, instead of the device's answer."""
    start, n = time.perf_counter(), session.workload.data.num_train
    planned: dict[str, int] = {}
    if fits is None:
        if jax.default_backend() != "cpu":
            method, fits = "out-of-memory probe", lambda b: runs(session, b)
        elif capacity is not None:
            method = f"XLA's memory plan within the stated {capacity / 2**30:.3g} GiB"

            def fits(b: int) -> bool:
                planned[str(b)] = planned_bytes(session, b)
                return planned[str(b)] <= capacity

        else:
            return records.Fits(
                largest=n, pick=max(candidates), method="every candidate fits (a CPU, no stated capacity)", margin=1.0
            )
    else:
        method = "the given probe"
    largest, tried = binsearch(fits, min(candidates), min(n, math.ceil(max(candidates) / margin)))
    usable = [b for b in candidates if largest is not None and b <= margin * largest]
    return records.Fits(
        largest=largest,
        pick=max(usable) if usable else None,
        method=method,
        margin=margin,
        capacity=capacity,
        tried=tried,
        planned_bytes=planned,
        seconds=time.perf_counter() - start,
    )
