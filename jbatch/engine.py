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
    in_axes: Sequence[int | None] | None = None,
    donate_argnums: tuple[int, ...] = (),
) -> Program:
    """Jits ``fn`` (vmapped with ``in_axes`` when given) and compiles it for the shapes of
    ``example_args``.

    ``in_axes`` maps each argument to its replica axis, e.g. ``(0, None, 0)`` for an epoch
    that trains K replicas (stacked state, shared data, one key each) in one program.
    ``donate_argnums`` lets the output reuse the training state's buffers.
    """
    if in_axes is not None:
        fn = jax.vmap(fn, in_axes=tuple(in_axes))
    jitted = jax.jit(fn, donate_argnums=donate_argnums)
    start = time.perf_counter()
    compiled = jitted.lower(*example_args).compile()
    return Program(compiled, time.perf_counter() - start)


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
