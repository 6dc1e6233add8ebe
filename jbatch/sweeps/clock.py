"""Where one batch size's wall time goes (``Clock``: training, evaluation, noise probes,
compilation and the rest, each timed around a blocking call), and ``attempt``: what fails
after a batch size has trained is recorded in its result instead of losing the training."""

from __future__ import annotations

import collections
import contextlib
import time
from collections.abc import Callable
from typing import Any

from jbatch.core.engine import CompileCounter, timed_call
from jbatch.errors import one_line
from jbatch.results.records import BatchSizeResult, TimeSpent

TIME_PARTS = ("train", "evaluate", "noise", "compile", "other")


class Clock:
    """Where one batch size's wall time goes: seconds per part, each measured around a
    blocking call (``engine.timed_call``); ``compile`` is every XLA compilation while the
    clock runs (as JAX reports them: the programs, and the eager operations that
    initialising models compiles); ``other`` is the rest of the wall time."""

    def __init__(self) -> None:
        self.start = time.perf_counter()
        self.parts: dict[str, float] = collections.defaultdict(float)
        self.compiles = CompileCounter().__enter__()
        self.building = 0.0  # tracing, lowering and compiling of compile_program calls
        self.inside = 0.0  # the XLA compile seconds among those (not to count twice)

    @contextlib.contextmanager
    def compiling(self):
        """Times building programs (trace, lower, compile) as compilation."""
        start, before = time.perf_counter(), self.compiles.seconds
        yield
        self.building += time.perf_counter() - start
        self.inside += self.compiles.seconds - before

    def call(self, part: str, program: Callable[..., Any], *args: Any) -> Any:
        out, seconds = timed_call(program, *args)
        self.parts[part] += seconds
        return out

    def summary(self) -> TimeSpent:
        wall = time.perf_counter() - self.start
        self.compiles.__exit__()
        parts = {k: self.parts[k] for k in TIME_PARTS if k not in ("other", "compile")}
        parts["compile"] = self.building + self.compiles.seconds - self.inside
        return TimeSpent(**parts, other=wall - sum(parts.values()), wall=wall)


def attempt(result: BatchSizeResult, what: str, fn: Callable[..., Any], *args: Any) -> Any:
    """``fn(*args)``, or None when it raises: the failure is recorded in
    ``result.failures[what]`` as one line, so a batch size already trained is not lost
    to what comes after its training (noise probes, replays, timing)."""
    try:
        return fn(*args)
    except Exception as e:
        result.failures[what] = one_line(e)
        return None
