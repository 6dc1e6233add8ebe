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

from jbatch.core.batching import epoch_batches, epoch_order


@dataclasses.dataclass(frozen=True)
class Layout:
    """How a batch size's budget is cut into compiled calls (chunks), and after which
    chunks the replicas are evaluated.

    ``chunks`` holds each chunk's ``(epoch, first step within the epoch, steps)``: a chunk
    never spans two epochs, and every call runs ``chunk_steps`` steps, the ones past a
    chunk's own skipped (one compiled program per batch size). Small batches: an epoch is
    cut into equal chunks of about the uniform cadence, each followed by an evaluation.
    Large batches (few, costly steps): the evaluations are geometric early on (steps 1, 2,
    3, ... growing by 10%: steps to target resolved to about 10% however early it comes)
    and uniform, at epoch ends, later; a chunk runs every step up to the next evaluation,
    so no call ends where nothing is measured.
    """

    steps_per_epoch: int
    chunk_steps: int
    chunks: tuple[tuple[int, int, int], ...]
    evaluate: tuple[bool, ...]
    coarse: tuple[bool, ...] = ()  # chunks after which every metric is evaluated (``with_coarse``)

    @property
    def num_chunks(self) -> int:
        return len(self.chunks)

    @property
    def epochs(self) -> int:
        return self.chunks[-1][0] + 1

    @property
    def total_steps(self) -> int:
        return self.epochs * self.steps_per_epoch

    def chunk_ends(self) -> list[int]:
        """Steps done at the end of each chunk."""
        return list(itertools.accumulate(steps for _, _, steps in self.chunks))


STEP_CHUNKS_FROM_BATCH = 32  # from this batch size on, steps are evaluated one by one early on


def layout(steps_per_epoch: int, budget: int, evals: int, batch_size: int) -> Layout:
    """Chooses chunks and evaluations: about ``evals`` uniform points over ``budget`` steps
    (rounded up to whole epochs), always at epoch ends, plus the early geometric points of
    large batches.

    Examples:
      >>> lay = layout(1, 400, 100, 1437)  # full batch
      >>> lay.chunk_steps, [i + 1 for i, e in enumerate(lay.evaluate) if e][:14]  # then 16, 17, 19, ...
      (1, [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14])
      >>> layout(1437, 5748, 100, 1).chunk_steps  # B = 1: 25 chunks of 58 steps per epoch
      58
      >>> lay = layout(6, 300, 100, 256)  # 50 epochs of 6 steps, evaluated every 3 steps
      >>> lay.chunk_steps, lay.chunk_ends()[17:24]  # geometric marks, every 3rd step, epoch ends (24)
      (3, [18, 19, 21, 23, 24, 25, 27])
    """
    S = steps_per_epoch
    interval = max(1, math.ceil(budget / evals))
    epochs = math.ceil(budget / S)
    if batch_size < STEP_CHUNKS_FROM_BATCH and S > interval:
        m = math.ceil(S / interval)
        k = math.ceil(S / m)
        chunks = tuple((e, p * k, min(k, S - p * k)) for e in range(epochs) for p in range(m))
        return Layout(S, k, chunks, (True,) * len(chunks))
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
    cuts = sorted(marks | set(range(S, total + 1, S)))  # a chunk ends at every mark and epoch end
    chunks = tuple((a // S, a % S, b - a) for a, b in itertools.pairwise([0, *cuts]))
    return Layout(S, max(n for _, _, n in chunks), chunks, tuple(b in marks for b in cuts))


def log_spaced(lay: Layout, count: int) -> set[int]:
    """The evaluated chunks nearest to ``count`` log-spaced steps from the first evaluation
    to the end of the budget (curves are drawn against log epochs, and change fastest early).

    Examples:
      >>> lay = layout(45, 400, 100, 32)  # B = 32, 9 epochs of 45 steps
      >>> [lay.chunk_ends()[c] for c in sorted(log_spaced(lay, 4))]  # the steps they end at
      [1, 7, 54, 405]
    """
    if not count:
        return set()
    ends = lay.chunk_ends()
    evaluated = [c for c in range(lay.num_chunks) if lay.evaluate[c]]
    steps = np.geomspace(ends[evaluated[0]], ends[-1], count)
    return {min(evaluated, key=lambda c: abs(math.log(ends[c] / t))) for t in steps}


def with_coarse(lay: Layout, count: int) -> Layout:
    """``lay`` with ``count`` coarse evaluation points (``log_spaced``), always the last chunk.

    Examples:
      >>> lay = with_coarse(layout(45, 400, 100, 32), 4)  # B = 32, 9 epochs of 45 steps
      >>> [e for e, c in zip(lay.chunk_ends(), lay.coarse) if c]
      [1, 7, 54, 405]
    """
    chosen = log_spaced(lay, count) | {lay.num_chunks - 1}
    return dataclasses.replace(lay, coarse=tuple(c in chosen for c in range(lay.num_chunks)))


def chunk_batches(
    lay: Layout, chunk: int, batch_size: int, tables: Callable[[int], tuple[np.ndarray, np.ndarray]]
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Host-side batches of chunk ``chunk``: ``idx [K, k, B]``, ``mask [k, B]``, ``active [k]``.

    ``tables(epoch)`` gives the epoch's batches of every replica, ``idx [K, steps, B]`` and
    the shared ``mask [steps, B]`` (``epoch_tables``; cut once per epoch, not per chunk).
    Masks are shared: padding sits at the same place in every replica's epoch.
    """
    k = lay.chunk_steps
    epoch, first, real = lay.chunks[chunk]
    idx, mask = tables(epoch)
    rows = slice(first, first + real)
    idx, mask = idx[:, rows], mask[rows]
    active = np.arange(k) < real
    if real < k:  # a shorter chunk: pad with skipped steps
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
    """Which evaluated chunks also measure the noise scale: ``count`` of them (``log_spaced``)."""
    chosen = log_spaced(lay, count)
    return tuple(c in chosen for c in range(lay.num_chunks))


def fixed_subsample(n: int, limit: int, seed: int = 0) -> np.ndarray | None:
    """Sorted indices of a fixed random subsample of ``limit`` of ``n`` rows, or None for
    all of them (``limit`` 0, or not smaller than ``n``)."""
    if not limit or limit >= n:
        return None
    return np.sort(np.random.default_rng(seed).choice(n, limit, replace=False))
