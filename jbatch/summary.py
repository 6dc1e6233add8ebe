"""From raw sweep curves to the numbers in the tables: targets, best learning rates, spreads.

Pure functions of the JSON document: ``jbatch report`` recomputes everything from it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

HIGHER_IS_BETTER = {"test_accuracy": True, "train_accuracy": True, "test_loss": False, "train_loss": False}


def first_reach(values: Sequence[float], target: float, higher: bool) -> int | None:
    """Index of the first value at or past ``target`` (None if never): the first crossing.

    Example:
      >>> first_reach([0.5, 0.96, 0.94, 0.97], 0.95, higher=True)
      1
      >>> first_reach([2.0, 1.0, 0.4], 0.1, higher=False) is None
      True
    """
    for i, v in enumerate(values):
        if v is not None and math.isfinite(v) and (v >= target if higher else v <= target):
            return i
    return None


def examples_at(step: int, steps_per_epoch: int, examples_per_epoch: Sequence[int], batch_size: int) -> int:
    """Training examples consumed after ``step`` updates: the whole epochs' examples as the
    program counted them, then full batches (only an epoch's last batch is partial)."""
    epochs, rest = divmod(step, steps_per_epoch)
    return int(sum(examples_per_epoch[:epochs])) + rest * batch_size


def regime(batch_size: int, num_train: int) -> str:
    """``full-batch`` (B = N), ``stochastic`` (B = 1) or ``mini-batch``."""
    if batch_size >= num_train:
        return "full-batch"
    return "stochastic" if batch_size == 1 else "mini-batch"


def replica_summary(rep: dict[str, Any], result: dict[str, Any], metric: str, target: float) -> dict[str, Any]:
    """One replica's numbers: when it reached the target (before any divergence), and the
    overfitting marks of claim C9 (epoch of minimum test loss, rise after it, final gap)."""
    c = rep["curve"]
    steps = c["step"]
    values = c[metric]
    if rep["diverged"]:  # only points evaluated before the divergence count
        values = [v for s, v in zip(steps, values, strict=True) if s < rep["diverged_at_step"]]
    hit = first_reach(values, target, HIGHER_IS_BETTER[metric])
    test_loss = np.asarray([np.inf if v is None else v for v in c["test_loss"]], float)
    best = int(np.argmin(test_loss))
    out = {
        "learning_rate": rep["learning_rate"],
        "seed": rep["seed"],
        "diverged": rep["diverged"],
        "reached": hit is not None,
        "steps_to_target": None,
        "epochs_to_target": None,
        "examples_to_target": None,
        "final_train_loss": c["train_loss"][-1],
        "final_test_loss": c["test_loss"][-1],
        "min_test_loss": float(test_loss[best]),
        "epoch_of_min_test_loss": c["epoch"][best],
        "test_loss_rise": float(test_loss[-1] - test_loss[best]),
        "train_test_gap": _gap(c["test_loss"][-1], c["train_loss"][-1]),
    }
    if "test_accuracy" in c:
        out["best_test_accuracy"] = max((v for v in c["test_accuracy"] if v is not None), default=None)
        out["final_test_accuracy"] = c["test_accuracy"][-1]
    if hit is not None:
        s = steps[hit]
        out["steps_to_target"] = s
        out["epochs_to_target"] = s / result["steps_per_epoch"]
        out["examples_to_target"] = examples_at(
            s, result["steps_per_epoch"], result["counted"]["examples_per_epoch"], result["batch_size"]
        )
    return out


def _gap(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None else a - b


def _key(group: list[dict[str, Any]]) -> tuple[float, float, float]:
    reached = [r for r in group if r["reached"]]
    steps = np.mean([r["steps_to_target"] for r in reached]) if reached else math.inf
    final = [r["final_test_loss"] for r in group if r["final_test_loss"] is not None]
    loss = float(np.mean(final)) if final and all(math.isfinite(f) for f in final) else math.inf
    return (-len(reached) / len(group), float(steps), loss)


def learning_rate_edge(summaries: list[dict[str, Any]], best: float) -> str | None:
    """Whether the grid, rather than the data, limits the best learning rate ``best``:
    ``"grid-low"`` / ``"grid-high"`` when it is the grid's lowest / highest point (the
    optimum may lie beyond), ``"stable-edge"`` when the next larger grid point diverged in
    some seed (the optimum may lie between the two). Steps to target at such a batch size
    are upper bounds on what a finer or wider grid would find.

    Example:
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


def best_learning_rate(summaries: list[dict[str, Any]]) -> float:
    """The learning rate whose seeds reach the target most often, then in the fewest mean
    steps, ties broken by the lower mean final test loss.

    Example:
      >>> rows = [dict(learning_rate=lr, reached=ok, steps_to_target=s, final_test_loss=f)
      ...         for lr, ok, s, f in [(0.1, True, 50, 0.3), (1.0, True, 20, 0.2), (10.0, False, None, None)]]
      >>> best_learning_rate(rows)
      1.0
    """
    by_lr: dict[float, list[dict[str, Any]]] = {}
    for s in summaries:
        by_lr.setdefault(s["learning_rate"], []).append(s)
    return min(by_lr, key=lambda lr: _key(by_lr[lr]))


def spread(values: Sequence[float | None]) -> dict[str, Any]:
    """Mean, sample standard deviation (ddof=1: seeds are a sample; 0 for a single value),
    min and max over seeds, and how many values there were.

    Example:
      >>> spread([1.0, 2.0, 3.0, None])["std"]
      1.0
    """
    v = np.asarray([x for x in values if x is not None and math.isfinite(x)], float)
    if v.size == 0:
        return {"mean": None, "std": None, "min": None, "max": None, "n": 0}
    std = float(v.std(ddof=1)) if v.size > 1 else 0.0
    return {"mean": float(v.mean()), "std": std, "min": float(v.min()), "max": float(v.max()), "n": int(v.size)}


AGGREGATED = (
    "steps_to_target", "epochs_to_target", "examples_to_target", "seconds_to_target",
    "best_test_accuracy", "final_test_accuracy", "final_train_loss", "final_test_loss",
    "min_test_loss", "epoch_of_min_test_loss", "test_loss_rise", "train_test_gap",
)  # fmt: skip


def batch_size_summary(result: dict[str, Any], metric: str, target: float, num_train: int) -> dict[str, Any]:
    """The table row of one batch size: its best learning rate and, at that rate, every
    metric as a spread over seeds. Wall-clock time to target is steps to target times the
    measured single-model seconds per step (compile excluded)."""
    per_step = result["timing"]["seconds_per_step"]
    summaries = [replica_summary(rep, result, metric, target) for rep in result["replicas"]]
    for s in summaries:
        s["seconds_to_target"] = None if s["steps_to_target"] is None else s["steps_to_target"] * per_step
    lr = best_learning_rate(summaries)
    at_best = [s for s in summaries if s["learning_rate"] == lr]
    row = {
        "regime": regime(result["batch_size"], num_train),
        "batch_size": result["batch_size"],
        "steps_per_epoch": result["steps_per_epoch"],
        "best_learning_rate": lr,
        "lr_edge": learning_rate_edge(summaries, lr),
        "reached": sum(s["reached"] for s in at_best),
        "seeds": len(at_best),
        "samples_per_second": result["timing"]["samples_per_second"],
        "seconds_per_epoch": result["timing"]["seconds_per_epoch"],
        "diverged_fraction": sum(s["diverged"] for s in summaries) / len(summaries),
        "budget_steps": result["budget_steps"],
    }
    for name in AGGREGATED:
        row[name] = spread([s.get(name) for s in at_best])
    return {"row": row, "replicas": summaries, "noise": noise_summary(result, row)}


def noise_summary(result: dict[str, Any], row: dict[str, Any]) -> dict[str, Any] | None:
    """``B_simple`` along training at the row's best learning rate (mean over its seeds,
    diverged ones left out), and its value at the checkpoint nearest the target."""
    reps = [r for r in result["replicas"] if r["learning_rate"] == row["best_learning_rate"] and not r["diverged"]]
    reps = [r for r in reps if r.get("noise", {}).get("step")]
    if not reps:
        return None
    steps = reps[0]["noise"]["step"]
    values = np.array([[np.nan if v is None else v for v in r["noise"]["b_simple"]] for r in reps], float)
    with np.errstate(invalid="ignore"):
        mean = np.nanmean(values, 0) if np.isfinite(values).any() else np.full(len(steps), np.nan)
    target = row["steps_to_target"]["mean"]
    at = int(np.argmin([abs(math.log(s / target)) for s in steps])) if target else None
    return {
        "step": steps,
        "b_simple": [None if not math.isfinite(v) else float(v) for v in mean],
        "at_target": None if at is None or not math.isfinite(mean[at]) else float(mean[at]),
        "at_target_step": None if at is None else steps[at],
    }


def sweep_fit(rows: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The S(B) trade-off fitted to the batch sizes that reached the target, with a
    bootstrap interval for B_crit and the batch sizes whose points are bounds (their best
    learning rate is on an edge of the grid: ``learning_rate_edge``)."""
    from jbatch.tradeoff import bootstrap, fit_steps

    reached = [s for s in rows if s["row"]["steps_to_target"]["n"]]
    if len({s["row"]["batch_size"] for s in reached}) < 3:
        return None
    b = [s["row"]["batch_size"] for s in reached]
    fit = fit_steps(b, [s["row"]["steps_to_target"]["mean"] for s in reached])
    per_size = {s["row"]["batch_size"]: [r["steps_to_target"] for r in s["replicas"] if r["reached"]
                                         and r["learning_rate"] == s["row"]["best_learning_rate"]]
                for s in reached}  # fmt: skip
    fit["interval"] = bootstrap(per_size)
    fit["bounds"] = [s["row"]["batch_size"] for s in reached if s["row"]["lr_edge"]]
    return fit
