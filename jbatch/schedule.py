"""How a sweep's run at one batch size is cut: budget, compiled chunks, the evaluation
cadence (fine: the target's split, at which steps to target are resolved; coarse: every
other metric), the checkpoints of the noise probes, and the host-side batches of a chunk.
"""

from __future__ import annotations

import dataclasses
import itertools
import math
from collections.abc import Callable

import numpy as np

from jbatch.batching import epoch_batches, epoch_order
from jbatch.config import SweepConfig


@dataclasses.dataclass(frozen=True)
class Layout:
    """How a batch size's budget is cut into compiled chunks, and after which chunks the
    replicas are evaluated.

    Small batches: an epoch is cut into ``chunks_per_epoch`` chunks of ``chunk_steps`` (the
    last padded with skipped steps), each followed by an evaluation. Large batches (few,
    costly steps): one step per chunk, evaluated on a schedule that is geometric early on
    (steps 1, 2, 3, ... growing by 10%: steps to target resolved to about 10% however
    early it comes) and uniform, at epoch ends, later.
    """

    steps_per_epoch: int
    chunk_steps: int
    chunks_per_epoch: int
    num_chunks: int
    evaluate: tuple[bool, ...]
    coarse: tuple[bool, ...] = ()  # chunks after which every metric is evaluated (``with_coarse``)

    @property
    def total_steps(self) -> int:
        return self.num_chunks // self.chunks_per_epoch * self.steps_per_epoch

    def chunk_ends(self) -> list[int]:
        """Steps done at the end of each chunk (an epoch's last chunk may be shorter)."""
        k, s, m = self.chunk_steps, self.steps_per_epoch, self.chunks_per_epoch
        return list(itertools.accumulate(min(k, s - (c % m) * k) for c in range(self.num_chunks)))


STEP_CHUNKS_FROM_BATCH = 32  # from this batch size on, a step costs enough to be its own chunk


def layout(steps_per_epoch: int, budget: int, evals: int, batch_size: int) -> Layout:
    """Chooses chunks and evaluations: about ``evals`` uniform points over ``budget`` steps
    (rounded up to whole epochs), always at epoch ends, plus the early geometric points of
    large batches.

    Example:
      >>> lay = layout(1, 400, 100, 1437)  # full batch
      >>> lay.chunk_steps, [i + 1 for i, e in enumerate(lay.evaluate) if e][:14]  # then 16, 17, 19, ...
      (1, [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14])
      >>> layout(1437, 5748, 100, 1).chunk_steps  # B = 1: 25 chunks of 58 steps per epoch
      58
    """
    S = steps_per_epoch
    interval = max(1, math.ceil(budget / evals))
    epochs = math.ceil(budget / S)
    if batch_size < STEP_CHUNKS_FROM_BATCH and S > interval:
        m = math.ceil(S / interval)
        return Layout(S, math.ceil(S / m), m, m * epochs, (True,) * (m * epochs))
    total = epochs * S
    if interval >= S:  # every j-th epoch end
        j = max(1, round(interval / S))
        uniform = {t for t in range(j * S, total + 1, j * S)}
    else:
        uniform = set(range(interval, total + 1, interval)) | set(range(S, total + 1, S))
    geometric, t = set(), 1.0
    while t <= total:
        geometric.add(math.ceil(t))
        t = max(t * 1.1, math.ceil(t) + 1)
    marks = uniform | geometric | {total}
    return Layout(S, 1, S, total, tuple(step in marks for step in range(1, total + 1)))


def with_coarse(lay: Layout, count: int) -> Layout:
    """``lay`` with ``count`` coarse evaluation points: the evaluated chunks nearest to
    ``count`` log-spaced steps from the first evaluation to the end (curves are drawn
    against log epochs, and change fastest early), always the last chunk.

    Example:
      >>> lay = with_coarse(layout(45, 400, 100, 32), 4)  # B = 32, 9 epochs of 45 steps
      >>> [e for e, c in zip(lay.chunk_ends(), lay.coarse) if c]
      [1, 7, 54, 405]
    """
    ends = lay.chunk_ends()
    evaluated = [c for c in range(lay.num_chunks) if lay.evaluate[c]]
    chosen = {lay.num_chunks - 1}
    for t in np.geomspace(ends[evaluated[0]], ends[-1], count):
        chosen.add(min(evaluated, key=lambda c: abs(math.log(ends[c] / t))))
    return dataclasses.replace(lay, coarse=tuple(c in chosen for c in range(lay.num_chunks)))


def budget_steps(config: SweepConfig, steps_per_epoch: int) -> int:
    return max(config.budget_steps, config.budget_epochs * steps_per_epoch)


def chunk_batches(
    lay: Layout, chunk: int, batch_size: int, tables: Callable[[int], tuple[np.ndarray, np.ndarray]]
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Host-side batches of chunk ``chunk``: ``idx [K, k, B]``, ``mask [k, B]``, ``active [k]``.

    ``tables(epoch)`` gives the epoch's batches of every replica, ``idx [K, steps, B]`` and
    the shared ``mask [steps, B]`` (``epoch_tables``; cut once per epoch, not per chunk).
    Masks are shared: padding sits at the same place in every replica's epoch.
    """
    k = lay.chunk_steps
    epoch, part = divmod(chunk, lay.chunks_per_epoch)
    idx, mask = tables(epoch)
    rows = slice(part * k, (part + 1) * k)
    idx, mask = idx[:, rows], mask[rows]
    real = mask.shape[0]
    active = np.arange(k) < real
    if real < k:  # the epoch's last chunk: pad with skipped steps
        idx = np.pad(idx, ((0, 0), (0, k - real), (0, 0)))
        mask = np.pad(mask, ((0, k - real), (0, 0)))
    return idx, mask, active


def epoch_tables(seeds: list[int], epoch: int, num_examples: int, batch_size: int, remainder: str):
    """Every replica's batches of ``epoch``, ``idx [K, steps, B]``, and the shared mask: one
    order and one table per distinct seed (replicas that differ only in learning rate share
    them)."""
    per_seed = {s: epoch_batches(epoch_order(s, epoch, num_examples), batch_size, remainder) for s in set(seeds)}
    return np.stack([per_seed[s][0] for s in seeds]), per_seed[seeds[0]][1]


def probe_chunks(lay: Layout, count: int) -> tuple[bool, ...]:
    """Which evaluated chunks also measure the noise scale: ``count`` of them, nearest to
    log-spaced steps between the first evaluation and the end of the budget."""
    ends = lay.chunk_ends()
    evaluated = [c for c in range(lay.num_chunks) if lay.evaluate[c]]
    chosen = set()
    if count:
        for target in np.geomspace(ends[evaluated[0]], ends[-1], count):
            chosen.add(min(evaluated, key=lambda c: abs(math.log(ends[c] / target))))
    return tuple(c in chosen for c in range(lay.num_chunks))
