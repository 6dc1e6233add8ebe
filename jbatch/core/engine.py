"""Compiles programs: the one module of jbatch that calls ``jax.jit``.

Everything else in jbatch is a pure function; here those functions are (optionally)
``jax.vmap``-ed over replicas and compiled ahead of time with jbatch's compiler options
(``compile_program``), so compile time is measured on its own and a steady-state call can
never silently recompile: an argument of a new shape is an error, not a new program.
``Programs`` keeps compiled programs by what determines them (the function's key, such as
its training step; the shapes and dtypes of its arguments; replicas and donation), so a
sweep, its timing, ``jbatch advise``, its branches and the warm-up check build each program
once and with the same options. ``traced_once`` keeps a function's trace inside a program
that traces it more than once (for its output shapes, then in a branch).
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Sequence
from typing import Any

import jax
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


def traced_once(fn: Callable[..., Any]) -> Callable[..., Any]:
    """``fn``, traced once per argument shapes however often a program calls it.

    The scans of ``jbatch.core.epoch`` and the guard trace the step for its output shapes
    (the NaN metrics of a skipped step) and again in a branch; through ``jax.jit``'s trace
    cache the model is traced once instead (measured on the tiny digits sweep: a tenth of
    its build time). This is not a program of its own: inside a compiled program it is a
    nested call that XLA inlines. An epoch compiles to the same instructions; a checked chunk
    to the same operations, the operands of the guard's branch in another order (tested in
    ``tests/test_engine.py``; on digits their steps ran equally fast, interleaved).
    """
    return jax.jit(fn)


def memory_of(compiled: Any) -> dict[str, int] | None:
    """XLA's memory plan of a compiled program, or None where the backend has none."""
    try:
        m = compiled.memory_analysis()
    except (AttributeError, NotImplementedError, RuntimeError):
        return None
    if m is None:
        return None
    keys = (
        "argument_size_in_bytes",
        "output_size_in_bytes",
        "alias_size_in_bytes",
        "temp_size_in_bytes",
        "peak_memory_in_bytes",
    )
    return {k.removesuffix("_in_bytes"): int(getattr(m, k, 0) or 0) for k in keys}


def signature(args: Any) -> tuple:
    """What of ``args`` determines a compiled program: the tree (with its static parts, a
    state's model graph and optimizer) and each leaf's shape and dtype."""
    leaves, tree = jax.tree.flatten(args)
    return tree, tuple(
        (tuple(np.shape(v)), str(getattr(v, "dtype", None) or np.result_type(v)), getattr(v, "weak_type", False))
        for v in leaves
    )


@dataclasses.dataclass
class Programs:
    """Compiled programs, each built once: ``get(key, fn, *args, ...)`` compiles ``fn`` for
    ``args`` unless a program of the same ``key`` (what identifies ``fn``: a name and the
    training step, loss or settings it closes over), argument ``signature``, replica axes,
    grouping and donation is here already. Every program gets the same compiler options
    (``default_compiler_options``, or ``options``); ``log`` keeps each compilation's key and
    seconds, ``hits`` counts the programs found here instead."""

    options: dict[str, Any] | None = None
    log: list[tuple[Any, float]] = dataclasses.field(default_factory=list)
    hits: int = 0
    _programs: dict[tuple, Program] = dataclasses.field(default_factory=dict, repr=False)

    def get(
        self,
        key: Any,
        fn: Callable[..., Any],
        *example_args: Any,
        in_axes: Sequence[Any] | None = None,
        donate_argnums: tuple[int, ...] = (),
        replica_batch: int | None = None,
    ) -> Program:
        full = (
            key,
            signature(example_args),
            None if in_axes is None else tuple(in_axes),
            tuple(donate_argnums),
            replica_batch,
        )
        if full in self._programs:
            self.hits += 1
            return self._programs[full]
        program = compile_program(
            fn,
            *example_args,
            in_axes=in_axes,
            donate_argnums=donate_argnums,
            replica_batch=replica_batch,
            compiler_options=self.options,
        )
        self._programs[full] = program
        self.log.append((key, program.compile_seconds))
        return program


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

    Examples:
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
