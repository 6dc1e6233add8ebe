"""A batch size's grid of replicas: every (swept values x seed) entry, what a grown grid lacks,
where the learning-rate grid must widen (``extension``), and the choice of the best
setting once no pruned run can change it (``settle_best``, with ``merge_replay`` filling in
a replayed run)."""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable
from typing import Any

import numpy as np

from jbatch.analysis.selection import best_setting, rank, replica_summary, setting
from jbatch.config import SweepConfig
from jbatch.results.records import METRICS, BatchSizeResult, Replica


def replica_grid(config: SweepConfig) -> list[tuple[dict[str, float], int]]:
    """Every replica of a batch size: each combination of the swept hyperparameters
    (``Grid.axes``: learning rate first), with each seed."""
    axes = config.grid.axes()
    combos = itertools.product(*axes.values())
    return [(dict(zip(axes, values, strict=True)), seed) for values in combos for seed in config.grid.seeds]


def _summaries(config: SweepConfig, result: BatchSizeResult) -> list[dict[str, Any]]:
    target = config.target
    return [replica_summary(r, result, target.metric, target.value) for r in result.replicas]


def settle_best(result: BatchSizeResult, config: SweepConfig, replay: Callable[[list[int]], None]) -> tuple:
    """The best setting and its replicas' indices, once no pruned run can change the choice.

    A pruned replica's steps to target come from a coarse point, later than the truth; the
    truth lies after the step it was pruned at. Every setting whose pruned replicas, put at
    one step past their pruning, would rank at least as well as the best (``selection.rank``)
    has those replicas replayed (``replay(indices)`` fills in their fine points), and the
    ranking is made again, until none is left (each replica is replayed at most once)."""
    replayed: set[int] = set()
    while True:
        summaries = _summaries(config, result)
        best = best_setting(summaries)
        by: dict[tuple, list[int]] = {}
        for r, s in enumerate(summaries):
            by.setdefault(s["setting"], []).append(r)
        best_rank = rank([summaries[r] for r in by[best]])
        todo = [
            r
            for key, members in by.items()
            for r in members
            if summaries[r]["coarse_steps"]
            and r not in replayed
            and rank([summaries[i] for i in members], optimistic=True) <= best_rank
        ]
        if not todo:
            return best, by[best]
        replayed.update(todo)
        replay(todo)


def settled_bound(config: SweepConfig, result: BatchSizeResult) -> float:
    """The fewest mean steps to target of a setting of ``result`` whose every seed reached
    the target (``recorder.Watch.best`` of a finished run; a target reached at a coarse
    point counts at that later step, so the bound is never tighter than the truth)."""
    summaries = _summaries(config, result)
    by: dict[tuple, list[dict[str, Any]]] = {}
    for s in summaries:
        by.setdefault(s["setting"], []).append(s)
    done = [
        float(np.mean([s["steps_to_target"] for s in group]))
        for group in by.values()
        if all(s["reached"] for s in group)
    ]
    return min(done, default=math.inf)


def missing(config: SweepConfig, result: BatchSizeResult) -> int:
    """How many replicas of ``config``'s grid a batch size's ``result`` lacks (a grown grid)."""
    have = {(setting(rep), rep.seed) for rep in result.replicas}
    return sum((tuple(sorted(h.items())), seed) not in have for h, seed in replica_grid(config))


def merge_replay(original: Replica, replay: Replica) -> None:
    """Fills the fine points a pruned replica skipped with those of its replay (the same
    trajectory from where it was pruned, evaluated at every fine point up to the target), in
    place."""
    steps = replay.curve.step
    at = original.curve.step.index(steps[0])  # a replay starts where its run was pruned
    assert original.curve.step[at : at + len(steps)] == steps, "a replay follows the same cadence"
    for key in METRICS:
        values, mine = replay.curve.get(key), original.curve.get(key)
        if values is None or mine is None:
            continue
        for i, v in enumerate(values, start=at):
            if mine[i] is None:
                mine[i] = v
    original.pruned_at_step = None
    original.replayed_until = steps[-1]


def extension(config: SweepConfig, result: BatchSizeResult, points: int) -> list[dict[str, float]]:
    """Where the learning-rate grid must widen (Shallue et al. 2018 compare batch sizes at
    their best learning rate, which is only found if the grid brackets it): when the best
    setting's learning rate is the lowest or the highest tried with its other values, the
    next ``points`` half-decades beyond it, as settings; none when it is interior (a run
    beyond it exists: it was worse, diverged or missed the target)."""
    summaries = _summaries(config, result)
    best = dict(best_setting(summaries))
    others = {k: v for k, v in best.items() if k != "learning_rate"}
    tried = sorted(
        {s["learning_rate"] for s in summaries if all(dict(s["setting"]).get(k) == v for k, v in others.items())}
    )
    lr = best["learning_rate"]
    if lr == tried[-1]:
        sign = 1
    elif lr == tried[0] and len(tried) > 1:
        sign = -1
    else:
        return []
    return [others | {"learning_rate": float(f"{lr * 10 ** (sign * 0.5 * k):.4g}")} for k in range(1, points + 1)]
