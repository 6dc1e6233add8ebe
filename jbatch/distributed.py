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

import jax


@dataclasses.dataclass(frozen=True)
class Processes:
    """This process's place among ``count`` processes of one sweep."""

    index: int = 0
    count: int = 1

    def __post_init__(self) -> None:
        if not 0 <= self.index < self.count:
            raise ValueError(f"process index {self.index} is not in [0, {self.count})")

    def share(self, items: list) -> list:
        """This process's items: every ``count``-th one, starting at ``index``."""
        return items[self.index :: self.count]


def initialize(coordinator: str, count: int, index: int, timeout_s: int = 120) -> Processes:
    """Joins the ``jax.distributed`` job (coordinator ``host:port``), waiting at most
    ``timeout_s`` for the others. On CPU, collectives go through gloo."""
    jax.config.update("jax_cpu_collectives_implementation", "gloo")  # CPU only; accelerators ignore it
    jax.distributed.initialize(
        coordinator_address=coordinator, num_processes=count, process_id=index, initialization_timeout=timeout_s
    )
    return Processes(index, count)


def barrier(name: str, processes: Processes, timeout_s: int = 3600) -> None:
    """Waits until every process reaches ``name``; raises after ``timeout_s`` seconds.

    Uses the coordination service's barrier (the same one JAX's own multi-host utilities
    use), so it needs no device and cannot hang forever.
    """
    if processes.count == 1:
        return
    from jax._src import distributed  # the client behind jax.distributed; no public handle

    distributed.global_state.client.wait_at_barrier(name, timeout_in_ms=timeout_s * 1000)
