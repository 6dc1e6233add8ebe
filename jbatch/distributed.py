"""Several processes, one sweep: ``jax.distributed`` start-up and a bounded barrier.

A multi-process sweep splits its batch sizes over the processes (``sizes[i::P]``); each
process trains its share on its own local devices and writes ``parts/process-<i>.json``;
process 0 merges the parts into the one ``sweep.json``. Batch sizes are independent
experiments, so this needs no collective inside training, survives a slow process, and
every merged result keeps the metadata of the process (and device) that measured it.
One run spanning all processes' devices is the other design; for sweeps it would put a
cross-host all-reduce into every step for no gain in what is measured.
"""

from __future__ import annotations

import dataclasses
import threading

import jax


@dataclasses.dataclass(frozen=True)
class Processes:
    """This process's place among ``count`` processes of one sweep, and how long it waits
    for the others at a barrier (seconds)."""

    index: int = 0
    count: int = 1
    barrier_timeout: float = 24 * 3600.0

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
    ``timeout_s`` for the others to join; later barriers wait at most ``barrier_timeout``.
    On CPU, collectives go through gloo."""
    jax.config.update("jax_cpu_collectives_implementation", "gloo")  # CPU only; accelerators ignore it
    jax.distributed.initialize(
        coordinator_address=coordinator, num_processes=count, process_id=index, initialization_timeout=timeout_s
    )
    return Processes(index, count, barrier_timeout)


def barrier(name: str, processes: Processes) -> None:
    """Waits until every process reaches ``name``; raises ``TimeoutError`` after
    ``processes.barrier_timeout`` seconds.

    JAX's public barrier, ``multihost_utils.sync_global_devices``, is a collective with no
    timeout of its own; it runs in a daemon thread that this one waits for, bounded. (A
    process that gives up exits with the error; the stuck thread dies with it.)
    """
    if processes.count == 1:
        return
    from jax.experimental import multihost_utils

    failure: list[BaseException] = []

    def wait() -> None:
        try:
            multihost_utils.sync_global_devices(name)
        except BaseException as e:  # noqa: BLE001  handed to the waiting thread
            failure.append(e)

    thread = threading.Thread(target=wait, name=f"barrier-{name}", daemon=True)
    thread.start()
    thread.join(processes.barrier_timeout)
    if thread.is_alive():
        raise TimeoutError(f"barrier {name!r}: the other processes did not arrive within {processes.barrier_timeout:g} s")
    if failure:
        raise failure[0]
