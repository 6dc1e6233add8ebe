"""Which setting of a batch size is the best, from its replicas' recorded curves: when each replica
reached the target, whether it stayed stable, and the ranking of settings. The rule the
sweep uses while it runs (pruning, replays, noise probes) and the reports use after it:
pure functions of the JSON, no jax.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from jbatch.config import HIGHER_IS_BETTER
from jbatch.results.records import BatchSizeResult, Replica


def first_reach(values: Sequence[float], target: float, higher: bool) -> int | None:
    """Index of the first value at or past ``target`` (None if never): the first crossing.

    Examples:
      >>> first_reach([0.5, 0.96, 0.94, 0.97], 0.95, higher=True)
      1
      >>> first_reach([2.0, 1.0, 0.4], 0.1, higher=False) is None
      True
    """
    for i, v in enumerate(values):
        if v is not None and math.isfinite(v) and (v >= target if higher else v <= target):
            return i
    return None


def counted_examples(result: BatchSizeResult) -> list[int]:
    """Examples per epoch as the compiled program counted them: its count of loss terms
    (``counted.examples_per_epoch``) over the terms per example (a sequence's tokens)."""
    return [int(round(terms / result.tokens_per_example)) for terms in result.counted.examples_per_epoch]


def examples_at(step: int, steps_per_epoch: int, examples_per_epoch: Sequence[int], batch_size: int) -> int:
    """Training examples consumed after ``step`` updates: the whole epochs' examples as the
    program counted them, then full batches (only an epoch's last batch is partial)."""
    epochs, rest = divmod(step, steps_per_epoch)
    return int(sum(examples_per_epoch[:epochs])) + rest * batch_size


def series(rep: Replica, key: str) -> tuple[list[int], list[float | None]]:
    """The steps and values of one metric of a replica, from its fine curve (the target's
    split, mini-batch loss means) or its coarse one (the other split); no points where it
    has none (a regression's accuracy)."""
    for curve in (rep.curve, rep.coarse):
        values = curve.get(key)
        if values is not None:
            return curve.step, values
    return [], []


def _before(steps, values, until: int | None) -> tuple[list[int], list[float | None]]:
    """The points evaluated before update ``until`` (a divergence); all when None."""
    if until is None:
        return list(steps), list(values)
    keep = [i for i, s in enumerate(steps) if s < until]
    return [steps[i] for i in keep], [values[i] for i in keep]


def _unstable_at(rep: Replica, after: int) -> int | None:
    """The first step after ``after`` (the target step) at which the training loss, as
    evaluated or as the mean of the mini-batch losses since the last evaluation, exceeds the
    replica's starting loss (its training loss at step 0): a run that reached the target
    and then blew up, whether or not it came back."""
    steps, train = series(rep, "train_loss")
    start = train[0] if steps and steps[0] == 0 else None
    if start is None or not math.isfinite(start):
        return None
    points = list(zip(steps, train, strict=True))
    points += list(zip(*series(rep, "minibatch_loss"), strict=True))
    until = rep.diverged_at_step
    rises = [s for s, v in points if s > after and (until is None or s < until) and v is not None and v > start]
    return min(rises, default=None)


def replica_summary(rep: Replica, result: BatchSizeResult, metric: str, target: float) -> dict[str, Any]:
    """One replica's numbers, from points evaluated before any divergence: when it reached
    the target, whether it stayed stable afterwards (``_unstable_at``), and the overfitting
    marks of claim C9 (epoch of minimum test loss, rise after it, final gap)."""
    until = rep.diverged_at_step if rep.diverged else None
    steps, values = _before(*series(rep, metric), until)
    hit = first_reach(values, target, HIGHER_IS_BETTER[metric])
    t_steps, test_loss = _before(*series(rep, "test_loss"), until)
    _, train_loss = _before(*series(rep, "train_loss"), until)
    loss = np.asarray([np.inf if v is None else v for v in test_loss], float)
    best = int(np.argmin(loss)) if np.isfinite(loss).any() else None  # none: never measured finite
    spe = result.steps_per_epoch
    final_test, final_train = (test_loss[-1] if test_loss else None), (train_loss[-1] if train_loss else None)
    out = {
        "learning_rate": rep.learning_rate,
        "setting": setting(rep),
        "seed": rep.seed,
        "diverged": rep.diverged,
        "diverged_at_step": rep.diverged_at_step,
        "reached": hit is not None,
        "steps_to_target": None,
        "epochs_to_target": None,
        "examples_to_target": None,
        "tokens_to_target": None,
        "unstable_at_step": None,
        "coarse_steps": False,
        "pruned_at_step": rep.pruned_at_step,
        "final_train_loss": final_train,
        "final_test_loss": final_test,
        "min_test_loss": None if best is None else float(loss[best]),
        "epoch_of_min_test_loss": None if best is None else t_steps[best] / spe,
        "test_loss_rise": None if best is None else float(loss[-1] - loss[best]),
        "train_test_gap": _gap(final_test, final_train),
        "oscillation": oscillation(rep),
    }
    _, accuracy = _before(*series(rep, "test_accuracy"), until)
    if rep.curve.get("test_accuracy") is not None or rep.coarse.get("test_accuracy") is not None:  # not a regression
        out["best_test_accuracy"] = max((v for v in accuracy if v is not None), default=None)
        out["final_test_accuracy"] = accuracy[-1] if accuracy else None
    if hit is not None:
        s = steps[hit]
        out["steps_to_target"] = s
        out["epochs_to_target"] = s / spe
        out["examples_to_target"] = examples_at(s, spe, counted_examples(result), result.batch_size)
        out["tokens_to_target"] = out["examples_to_target"] * result.tokens_per_example
        out["unstable_at_step"] = _unstable_at(rep, s)
        pruned = rep.pruned_at_step
        out["coarse_steps"] = pruned is not None and s > pruned  # found at a coarse point only
    out["stable"] = not rep.diverged and out["unstable_at_step"] is None
    return out


def oscillation(rep: Replica) -> float | None:
    """How much of the objective's movement goes uphill: the training loss on the fixed
    sample (``curve.sample_loss``, evaluated at every fine point on the same rows, so
    sampling noise plays no part), the sum of its rises in log loss over the sum of all its
    moves, before any divergence. 0: it only falls; 0.5: as much up as down (wandering);
    None: not measured, or it never moved (a model that does not train).

    Examples:
      >>> from jbatch.results.records import Curve
      >>> rep = Replica(learning_rate=0.1, seed=0, curve=Curve(step=[0, 1, 2, 3], sample_loss=[4.0, 2.0, 4.0, 1.0]))
      >>> round(oscillation(rep), 3)  # log moves -0.69, +0.69, -1.39: 0.69 of 2.77 up
      0.25
    """
    if rep.curve.sample_loss is None:
        return None
    until = rep.diverged_at_step if rep.diverged else None
    _, values = _before(rep.curve.step, rep.curve.sample_loss, until)
    logs = np.log([v for v in values if v is not None and v > 0])
    moves = np.diff(logs)
    total = float(np.abs(moves).sum())
    return float(np.clip(moves, 0, None).sum()) / total if total > 0 else None


def _gap(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None else a - b


def rank(group: list[dict[str, Any]], optimistic: bool = False) -> tuple[float, float, float, float]:
    """How a setting's replicas (one per seed) rank, lower first: most seeds reaching the
    target and staying stable, then most reaching it, then fewest mean steps, then the
    lowest mean final test loss. ``optimistic``: a replica whose steps are coarse-resolved
    (it was pruned) counts at one step past its pruning, the fewest it can truly need."""
    reached = [r for r in group if r["reached"]]
    steady = [r for r in reached if r["stable"]]
    bound = lambda r: r["pruned_at_step"] + 1 if optimistic and r.get("coarse_steps") else r["steps_to_target"]  # noqa: E731
    steps = np.mean([bound(r) for r in reached]) if reached else math.inf
    final = [r["final_test_loss"] for r in group if r["final_test_loss"] is not None]
    loss = float(np.mean(final)) if final and all(math.isfinite(f) for f in final) else math.inf
    return (-len(steady) / len(group), -len(reached) / len(group), float(steps), loss)


def learning_rate_edge(summaries: list[dict[str, Any]], best: float) -> str | None:
    """Whether the grid, rather than the data, limits the best learning rate ``best``:
    ``"grid-low"`` / ``"grid-high"`` when it is the grid's lowest / highest point (the
    optimum may lie beyond), ``"stable-edge"`` when the next larger grid point diverged in
    some seed (the optimum may lie between the two). Steps to target at such a batch size
    are upper bounds on what a finer or wider grid would find.

    Examples:
      >>> rows = [dict(learning_rate=lr, diverged=d) for lr, d in [(0.1, False), (1.0, False), (10.0, True)]]
      >>> learning_rate_edge(rows, 1.0), learning_rate_edge(rows, 0.1), learning_rate_edge(rows[:2], 1.0)
      ('stable-edge', 'grid-low', 'grid-high')
    """
    grid = sorted({s["learning_rate"] for s in summaries})
    if len(grid) > 1 and best == grid[0]:
        return "grid-low"
    if best == grid[-1]:
        return "grid-high"
    above = grid[grid.index(best) + 1]
    return "stable-edge" if any(s["diverged"] for s in summaries if s["learning_rate"] == above) else None


def setting(rep: Replica) -> tuple:
    """A replica's swept hyperparameters as a sortable key: the learning rate alone, or
    (name, value) pairs when more than the learning rate is swept (``hyperparameters``
    also holds per-batch-size values such as a schedule's budget: those are not swept)."""
    if not rep.swept:
        return (("learning_rate", rep.learning_rate),)
    return tuple(sorted((k, rep.hyperparameters[k]) for k in rep.swept))


def best_replicas(items: list, row: dict[str, Any]) -> list:
    """The members of ``items`` (a result's replicas, or their ``replica_summary``s) that
    belong to a table row's best setting: one per seed."""
    best = {"learning_rate": row["best_learning_rate"], **row.get("best_hyperparameters", {})}
    return [r for r in items if dict(r["setting"] if isinstance(r, dict) else setting(r)) == best]


def best_setting(summaries: list[dict[str, Any]]) -> tuple:
    """The setting (learning rate, momentum, ...) whose seeds reach the target and stay
    stable most often, then reach it most often, then in the fewest mean steps, ties broken
    by the lower mean final test loss (``rank``), as ``((name, value), ...)``.

    Examples:
      >>> rows = [dict(learning_rate=lr, reached=ok, stable=st, steps_to_target=s, final_test_loss=f)
      ...         for lr, ok, st, s, f in [(0.1, True, True, 50, 0.3), (1.0, True, True, 20, 0.2),
      ...                                  (3.0, True, False, 10, 0.2), (10.0, False, False, None, None)]]
      >>> best_setting(rows)  # 3.0 is faster, but blew up after reaching the target
      (('learning_rate', 1.0),)
    """
    by: dict[tuple, list[dict[str, Any]]] = {}
    for s in summaries:
        by.setdefault(s.get("setting", (("learning_rate", s["learning_rate"]),)), []).append(s)
    return min(by, key=lambda k: (rank(by[k]), k))
