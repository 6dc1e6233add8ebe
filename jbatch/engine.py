"""Compiles training programs: the one module that calls ``jax.jit`` on training code.

Everything else in jbatch is a pure function; here those functions are (optionally)
``jax.vmap``-ed over replicas and compiled ahead of time, so compile time is measured on
its own and a steady-state call can never silently recompile: an argument of a new shape
is an error, not a new program.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Sequence
from typing import Any

import jax


@dataclasses.dataclass(frozen=True)
class Program:
    """A compiled program and what compiling it cost (seconds, wall clock)."""

    fn: Callable[..., Any]
    compile_seconds: float

    def __call__(self, *args: Any) -> Any:
        return self.fn(*args)


def compile_program(
    fn: Callable[..., Any],
    *example_args: Any,
    in_axes: Sequence[Any] | None = None,
    donate_argnums: tuple[int, ...] = (),
    replica_batch: int | None = None,
) -> Program:
    """Jits ``fn`` (over replicas, when ``in_axes`` is given) and compiles it for the
    shapes of ``example_args``.

    ``in_axes`` maps each argument to its replica axis (0) or None when shared, e.g.
    ``(0, None, 0)`` for an epoch that trains K replicas (stacked state, shared data, one
    order each) in one program. All K are vmapped together, or, with ``replica_batch=r``,
    ``r`` at a time in a ``lax.map`` (a loop inside the same program).
    ``donate_argnums`` lets the output reuse the training state's buffers.
    """
    if in_axes is not None:
        fn = over_replicas(fn, tuple(in_axes), replica_batch)
    jitted = jax.jit(fn, donate_argnums=donate_argnums)
    start = time.perf_counter()
    compiled = jitted.lower(*example_args).compile()
    return Program(compiled, time.perf_counter() - start)


def over_replicas(fn: Callable[..., Any], in_axes: tuple[Any, ...], replica_batch: int | None) -> Callable[..., Any]:
    """``fn`` applied to every replica: ``jax.vmap``, or ``lax.map`` in groups of
    ``replica_batch`` (same results; a different trade of parallelism for plain matmuls)."""
    if replica_batch is None:
        return jax.vmap(fn, in_axes=in_axes)

    batched = [i for i, ax in enumerate(in_axes) if ax is not None]  # axis 0 throughout, or None

    def mapped(*args: Any) -> Any:
        def one(per_replica: list[Any]) -> Any:
            full = list(args)
            for i, a in zip(batched, per_replica, strict=True):
                full[i] = a
            return fn(*full)

        return jax.lax.map(one, [args[i] for i in batched], batch_size=replica_batch)

    return mapped


def timed_call(program: Callable[..., Any], *args: Any) -> tuple[Any, float]:
    """Calls ``program`` and returns its outputs and the wall-clock seconds it took.

    Device sync point: the clock is read only after ``jax.block_until_ready`` on the
    outputs, since JAX dispatches asynchronously and returns before the work is done.
    """
    start = time.perf_counter()
    out = jax.block_until_ready(program(*args))
    return out, time.perf_counter() - start


class CompileCounter:
    """Counts XLA backend compilations while active (claim C11: one shape, one program).

    Example:
      >>> f, v = jax.jit(lambda v: v + 1), jax.numpy.ones(3)
      >>> with CompileCounter() as c:
      ...     _ = f(v), f(v)  # the second call reuses the program
      >>> c.count
      1
    """

    _EVENT = "/jax/core/compile/backend_compile_duration"

    def __init__(self) -> None:
        self.count = 0

    def _listen(self, event: str, duration: float, **kwargs: Any) -> None:
        if event == self._EVENT:
            self.count += 1

    def __enter__(self) -> CompileCounter:
        jax.monitoring.register_event_duration_secs_listener(self._listen)
        return self

    def __exit__(self, *exc: object) -> None:
        jax.monitoring.unregister_event_duration_listener(self._listen)
