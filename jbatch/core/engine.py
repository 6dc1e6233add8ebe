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
import jax.numpy as jnp
import numpy as np


@dataclasses.dataclass(frozen=True)
class Program:
    """A compiled program, what compiling it cost (seconds, wall clock), and the device
    memory XLA planned for it (bytes: arguments, outputs, temporaries, and its peak)."""

    fn: Callable[..., Any]
    compile_seconds: float
    memory: dict[str, int] | None = None

    def __call__(self, *args: Any) -> Any:
        return self.fn(*args)


def default_compiler_options() -> dict[str, Any]:
    """XLA options for jbatch's training programs. On CPU, region-based copy insertion
    drops the per-step copy of each weight matrix that the loop-carried update otherwise
    forces (measured in ``bench/``: the largest single cost of a B=1 step after the update
    itself)."""
    if jax.default_backend() == "cpu":
        return {"xla_cpu_copy_insertion_use_region_analysis": True}
    return {}


def fast_unroll(batch_size: int) -> int:
    """``lax.scan`` unroll for an epoch at ``batch_size``: 2 for tiny batches, where the
    loop's own per-iteration overhead is a visible share of a step; 1 otherwise (larger
    unrolls compile slower and ran no faster, see ``bench/``)."""
    return 2 if batch_size <= 8 else 1


def replica_group(batch_size: int) -> int | None:
    """How many replicas one program should ``vmap`` at a time; the rest run one group
    after another (``lax.map``) inside the same program. None: all at once.

    Measured on a 2-core CPU (``bench/``, digits MLP, momentum SGD): at B=1 a step is
    memory-bound on the weights and momentum it rewrites, so vmapping K replicas only
    amortises per-operation overhead: 4 together ran 1.5x one replica's throughput, 16
    together ran at half of it (their 21 MB no longer fit the caches). From B=8 on,
    vmapped matmuls become batched ``dot_general``s that XLA's CPU backend runs slower
    than K plain ones, so replicas go one at a time. Accelerators vmap everything.
    """
    if jax.default_backend() != "cpu":
        return None
    return 4 if batch_size <= 4 else 1


def compile_program(
    fn: Callable[..., Any],
    *example_args: Any,
    in_axes: Sequence[Any] | None = None,
    donate_argnums: tuple[int, ...] = (),
    replica_batch: int | None = None,
    compiler_options: dict[str, Any] | None = None,
) -> Program:
    """Jits ``fn`` (over replicas, when ``in_axes`` is given) and compiles it for the
    shapes of ``example_args``.

    ``in_axes`` maps each argument to its replica axis (0) or None when shared, e.g.
    ``(0, None, 0)`` for an epoch that trains K replicas (stacked state, shared data, one
    order each) in one program. All K are vmapped together, or, with ``replica_batch=r``,
    ``r`` at a time in a ``lax.map`` (a loop inside the same program).
    ``donate_argnums`` lets the output reuse the training state's buffers.
    ``compiler_options`` default to ``default_compiler_options()``; ``{}`` means XLA's own.
    """
    if in_axes is not None:
        fn = over_replicas(fn, tuple(in_axes), replica_batch)
    if compiler_options is None:
        compiler_options = default_compiler_options()
    jitted = jax.jit(fn, donate_argnums=donate_argnums)
    start = time.perf_counter()
    compiled = jitted.lower(*example_args).compile(compiler_options=compiler_options)
    return Program(compiled, time.perf_counter() - start, memory_of(compiled))


def memory_of(compiled: Any) -> dict[str, int] | None:
    """XLA's memory plan of a compiled program, or None where the backend has none."""
    try:
        m = compiled.memory_analysis()
    except (AttributeError, NotImplementedError, RuntimeError):
        return None
    if m is None:
        return None
    keys = ("argument_size_in_bytes", "output_size_in_bytes", "alias_size_in_bytes", "temp_size_in_bytes",
            "peak_memory_in_bytes")  # fmt: skip
    return {k.removesuffix("_in_bytes"): int(getattr(m, k, 0) or 0) for k in keys}


def jit(fn: Callable[..., Any], donate_argnums: tuple[int, ...] = ()) -> Callable[..., Any]:
    """``jax.jit`` with jbatch's compiler options, compiled on its first call (and on every
    call with new shapes: what claim C11 counts). ``compile_program`` is the ahead-of-time
    form that refuses new shapes."""
    return jax.jit(fn, donate_argnums=donate_argnums, compiler_options=default_compiler_options())


def over_replicas(fn: Callable[..., Any], in_axes: tuple[Any, ...], replica_batch: int | None) -> Callable[..., Any]:
    """``fn`` applied to every replica: ``jax.vmap``, or ``lax.map`` in groups of
    ``replica_batch`` (a different trade of parallelism for plain matmuls). The two agree to
    float32 rounding, not bit for bit: XLA sums in another order (measured on digits: 9e-8
    relative per epoch, growing to 4e-3 after a long high-learning-rate run); both are
    tested against independent single-replica runs."""
    if replica_batch is None:
        return jax.vmap(fn, in_axes=in_axes)

    batched = [i for i, ax in enumerate(in_axes) if ax is not None]  # axis 0 throughout, or None

    def mapped(*args: Any) -> Any:
        def one(per_replica: list[Any]) -> Any:
            full = list(args)
            for i, a in zip(batched, per_replica, strict=True):
                full[i] = a
            return fn(*full)

        # batch_size=1 would still vmap (over groups of one), turning a replica's lax.cond
        # into a select that runs both branches; a plain map keeps it a branch
        size = None if replica_batch == 1 else replica_batch
        return jax.lax.map(one, [args[i] for i in batched], batch_size=size)

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
        self.seconds = 0.0  # their total duration, as JAX reports it

    def _listen(self, event: str, duration: float, **kwargs: Any) -> None:
        if event == self._EVENT:
            self.count += 1
            self.seconds += duration

    def __enter__(self) -> CompileCounter:
        jax.monitoring.register_event_duration_secs_listener(self._listen)
        return self

    def __exit__(self, *exc: object) -> None:
        jax.monitoring.unregister_event_duration_listener(self._listen)


def matmul_peak_gflops(n: int = 2048, repeats: int = 10) -> float:
    """The float32 matmul rate jax reaches here: best of ``repeats`` ``n x n @ n x n``."""
    a = jnp.asarray(np.random.default_rng(0).standard_normal((n, n)), jnp.float32)
    f = jax.jit(lambda m: m @ m)
    jax.block_until_ready(f(a))
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        jax.block_until_ready(f(a))  # sync point: the clock is read after the result exists
        best = min(best, time.perf_counter() - start)
    return 2 * n**3 / best / 1e9
