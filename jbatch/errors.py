"""The one exception type for bad user input: the CLI turns it into a one-line error."""

import contextlib
import os
import signal
import sys
import traceback
from collections.abc import Iterator


class ConfigError(ValueError):
    """A configuration or input the user can fix (bad batch size, unknown model, NaN data)."""


class FaultError(RuntimeError):
    """A fault of the machine met after work was done (a write that failed mid-run): its
    message says what was kept and where. The command line exits with 1."""


class Interrupted(KeyboardInterrupt):
    """Ctrl-C, with what was finished and how to resume as its message (exit 130)."""


_signalled = False


def on_sigint(signum: int, frame: object) -> None:
    """The command line's SIGINT handler: Python's own (a ``KeyboardInterrupt`` now) that
    also remembers it was called, because a ``KeyboardInterrupt`` raised inside a finalizer
    or a callback of a C++ library is printed and dropped; ``check_interrupt`` raises it
    again at the next safe point (between compiled calls)."""
    global _signalled
    _signalled = True
    raise KeyboardInterrupt


def check_interrupt() -> None:
    """Raises ``KeyboardInterrupt`` if Ctrl-C came (``on_sigint``) and was swallowed."""
    if _signalled:
        raise KeyboardInterrupt


def reset_interrupt() -> None:
    global _signalled
    _signalled = False


def user_line(error: BaseException) -> str:
    """`` at FILE:LINE`` of the innermost frame of ``error``'s traceback outside jax, flax,
    optax and jbatch: the user's own line, or "" when there is none."""
    packages = [sys.modules[m].__file__ for m in ("jax", "jaxlib", "flax", "optax", "jbatch") if m in sys.modules]
    skip = tuple(os.path.dirname(f) + os.sep for f in packages if f)
    stdlib = os.path.dirname(os.__file__) + os.sep

    def ours(name: str) -> bool:
        return name.startswith(skip) or name.startswith(stdlib) and "site-packages" not in name

    frames = [f for f in traceback.extract_tb(error.__traceback__) if not ours(f.filename)]
    return f" at {frames[-1].filename}:{frames[-1].lineno}" if frames else ""


def one_line(error: BaseException) -> str:
    """``Type: first line of the message`` and the user's line (``user_line``)."""
    text = str(error).strip()
    return f"{type(error).__name__}: {text.splitlines()[0] if text else ''}{user_line(error)}"


@contextlib.contextmanager
def deferred_interrupts() -> Iterator[None]:
    """Holds Ctrl-C back for the block and raises it after: for native code that must not be
    cut off (a ``KeyboardInterrupt`` inside jaxlib's extension modules while they initialise
    aborts the process: exit 134, not 130)."""
    previous = signal.getsignal(signal.SIGINT)
    if previous in (signal.SIG_IGN, signal.SIG_DFL, None):
        yield
        return
    got: list[int] = []
    signal.signal(signal.SIGINT, lambda signum, frame: got.append(signum))
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
    if got:
        raise KeyboardInterrupt
