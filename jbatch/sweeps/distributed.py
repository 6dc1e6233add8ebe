"""Several processes, one sweep: ``jax.distributed`` start-up and a bounded barrier.

A multi-process sweep splits its batch sizes over the processes (``sizes[i::P]``); each
process trains its share on its own local devices and writes ``parts/process-<i>.json``
into the shared results directory; process 0 merges the parts into the one
``sweep.json``. Batch sizes are independent experiments, so this needs no collective
inside training, survives a slow process, and every merged result keeps the metadata of
the process (and device) that measured it. One run spanning all processes' devices is the
other design; for sweeps it would put a cross-host all-reduce into every step for no gain
in what is measured.

The barriers go through the results directory, which the processes share anyway (process
0 reads the others' parts from it): each process writes a marker file and waits, polling,
for all of them, for at most ``barrier_timeout`` seconds. JAX's public barrier
(``multihost_utils.sync_global_devices``) is a collective, and on CPU its gloo transport
gives up after 30 minutes (measured: "Timed out waiting 1800000ms"), shorter than one
process's share of a real sweep can take; JAX's coordination-service barrier, which takes
a timeout, is only reachable through the private ``jax._src``. One short collective at
start-up gives every process the same run token, so markers of an earlier run never count.
"""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path

import jax
import numpy as np
from jax.experimental import multihost_utils


@dataclasses.dataclass(frozen=True)
class Processes:
    """This process's place among ``count`` processes of one sweep, how long it waits for
    the others at a barrier (seconds), and the run's token (the same in every process)."""

    index: int = 0
    count: int = 1
    barrier_timeout: float = 24 * 3600.0
    token: int = 0

    def __post_init__(self) -> None:
        if not 0 <= self.index < self.count:
            raise ValueError(f"process index {self.index} is not in [0, {self.count})")

    def share(self, items: list) -> list:
        """This process's items: every ``count``-th one, starting at ``index``."""
        return items[self.index :: self.count]


def initialize(
    coordinator: str, count: int, index: int, barrier_timeout: float = 24 * 3600.0, timeout_s: int = 120
) -> Processes:
    """Joins the ``jax.distributed`` job (coordinator ``host:port``), waiting at most
    ``timeout_s`` for the others to join, and agrees on a run token (process 0's, sent to
    all by ``multihost_utils.broadcast_one_to_all``); later barriers wait at most
    ``barrier_timeout``. On CPU, collectives go through gloo."""
    jax.config.update("jax_cpu_collectives_implementation", "gloo")  # CPU only; accelerators ignore it
    jax.distributed.initialize(
        coordinator_address=coordinator, num_processes=count, process_id=index, initialization_timeout=timeout_s
    )
    mine = np.asarray(np.random.default_rng().integers(1, 2**31 - 1), np.int32)
    token = int(multihost_utils.broadcast_one_to_all(mine))
    return Processes(index, count, barrier_timeout, token)


def barrier(name: str, processes: Processes, directory: Path, poll_s: float = 0.5) -> None:
    """Waits until every process has reached ``name`` (its marker is in ``directory``);
    raises ``TimeoutError`` after ``Processes.barrier_timeout`` seconds."""
    if processes.count == 1:
        return
    directory.mkdir(parents=True, exist_ok=True)
    marker = lambda i: directory / f".barrier-{processes.token}-{name}-{i}"  # noqa: E731
    marker(processes.index).touch()
    deadline = time.monotonic() + processes.barrier_timeout
    while not all(marker(i).exists() for i in range(processes.count)):
        if time.monotonic() > deadline:
            missing = [i for i in range(processes.count) if not marker(i).exists()]
            raise TimeoutError(
                f"barrier {name!r}: process(es) {missing} did not arrive within {processes.barrier_timeout:g} s"
            )
        time.sleep(poll_s)


def clear_barriers(processes: Processes, directory: Path) -> None:
    """Removes the markers of earlier runs (process 0, before this run's first barrier)."""
    for path in directory.glob(".barrier-*"):
        if not path.name.startswith(f".barrier-{processes.token}-"):
            path.unlink(missing_ok=True)
