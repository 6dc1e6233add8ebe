"""Progress of a sweep: a bar with ETA on a terminal, plain lines anywhere else (CI, logs),
a line for each batch size skipped and for each failure recorded after a training."""

from __future__ import annotations

import sys
import time
from typing import Any, TextIO

# what ``clock.attempt`` records a failure of, in words
from jbatch.results.records import failed


class Progress:
    """Reports ``done / total`` chunks of one batch size.

    On a terminal the line is redrawn in place; otherwise a line is printed at every
    quarter, so logs stay short.
    """

    def __init__(self, label: str, stream: TextIO | None = None, width: int = 30):
        self.label, self.width = label, width
        self.stream = stream or sys.stderr
        self.tty = self.stream.isatty()
        self.start = time.perf_counter()
        self.last_quarter = -1

    def __call__(self, done: int, total: int) -> None:
        elapsed = time.perf_counter() - self.start
        eta = elapsed / done * (total - done) if done else float("nan")
        frac = done / total
        if self.tty:
            filled = int(self.width * frac)
            bar = "#" * filled + "-" * (self.width - filled)
            end = "\n" if done == total else ""
            self.stream.write(f"\r{self.label} [{bar}] {100 * frac:3.0f}% {elapsed:5.1f}s ETA {eta:5.1f}s{end}")
        elif int(4 * frac) > self.last_quarter:
            self.last_quarter = int(4 * frac)
            self.stream.write(f"{self.label}: {done}/{total} chunks, {elapsed:.1f}s, ETA {eta:.1f}s\n")
        self.stream.flush()


class SweepLog:
    """What a running sweep says (``driver.run_sweep``'s ``on_start`` and ``on_done``): a
    line for a batch size already in the results, a ``Progress`` while one trains, and a
    line for each failure recorded after its training (``clock.attempt``)."""

    def __init__(self, label: str = "", stream: TextIO | None = None):
        self.label = f"{label} " if label else ""
        self.stream = stream or sys.stdout  # lines; the progress bars go to standard error

    def start(self, batch_size: int, skipped: bool) -> Progress | None:
        if skipped:
            print(
                f"{self.label}B={batch_size}: already in the results, skipped (force redoes it)",
                file=self.stream,
                flush=True,
            )
            return None
        return Progress(f"{self.label}B={batch_size}")

    def done(self, batch_size: int, result: Any) -> None:
        for stage, line in result.failures.items():
            print(
                f"{self.label}{failed(batch_size, stage)}; the training is kept, the "
                f"failure is recorded in sweep.json: {line}",
                file=self.stream,
                flush=True,
            )
