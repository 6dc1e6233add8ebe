"""From raw sweep curves to the numbers in the tables: targets, best learning rates, spreads.

Pure functions of the JSON document: ``jbatch report`` recomputes everything from it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from jbatch.stats import mean_interval, product_interval, tie_set

HIGHER_IS_BETTER = {"test_accuracy": True, "train_accuracy": True, "test_loss": False, "train_loss": False}


def result_metadata(doc: dict[str, Any], result: dict[str, Any]) -> dict[str, Any]:
    """Where and with what ``result`` (one batch size) was measured: its own metadata, the
    document's where it has none (a resumed or ``--force``d sweep mixes runs, and the
    document keeps its first)."""
    return result.get("metadata") or doc["metadata"]


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


def counted_examples(result: dict[str, Any]) -> list[int]:
    """Examples per epoch as the compiled program counted them: its count of loss terms
    (``counted.examples_per_epoch``) over the terms per example (a sequence's tokens).

    Example:
      >>> counted_examples({"counted": {"examples_per_epoch": [65536, 65536]}, "tokens_per_example": 16})
      [4096, 4096]
    """
    per = result.get("tokens_per_example", 1)
    return [int(round(terms / per)) for terms in result["counted"]["examples_per_epoch"]]


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


def series(rep: dict[str, Any], key: str) -> tuple[list[int], list[float | None]]:
    """The steps and values of one metric of a replica, from its fine curve (the target's
    split, mini-batch loss means) or its coarse one (the other split)."""
    for part in ("curve", "coarse"):
        c = rep.get(part, {})
        if key in c:
            return c["step"], c[key]
    raise KeyError(key)


def _before(steps, values, until: int | None) -> tuple[list[int], list[float | None]]:
    """The points evaluated before update ``until`` (a divergence); all when None."""
    if until is None:
        return list(steps), list(values)
    keep = [i for i, s in enumerate(steps) if s < until]
    return [steps[i] for i in keep], [values[i] for i in keep]


def _unstable_at(rep: dict[str, Any], after: int) -> int | None:
    """The first step after ``after`` (the target step) at which the training loss, as
    evaluated or as the mean of the mini-batch losses since the last evaluation, exceeds the
    replica's starting loss (its training loss at step 0): a run that reached the target
    and then blew up, whether or not it came back."""
    steps, train = series(rep, "train_loss")
    start = train[0] if steps and steps[0] == 0 else None
    if start is None or not math.isfinite(start):
        return None
    points = list(zip(steps, train, strict=True))
    if "minibatch_loss" in rep.get("curve", {}):
        points += list(zip(*series(rep, "minibatch_loss"), strict=True))
    until = rep["diverged_at_step"]
    rises = [s for s, v in points if s > after and (until is None or s < until) and v is not None and v > start]
    return min(rises, default=None)


def replica_summary(rep: dict[str, Any], result: dict[str, Any], metric: str, target: float) -> dict[str, Any]:
    """One replica's numbers, from points evaluated before any divergence: when it reached
    the target, whether it stayed stable afterwards (``_unstable_at``), and the overfitting
    marks of claim C9 (epoch of minimum test loss, rise after it, final gap)."""
    until = rep["diverged_at_step"] if rep["diverged"] else None
    steps, values = _before(*series(rep, metric), until)
    hit = first_reach(values, target, HIGHER_IS_BETTER[metric])
    t_steps, test_loss = _before(*series(rep, "test_loss"), until)
    _, train_loss = _before(*series(rep, "train_loss"), until)
    loss = np.asarray([np.inf if v is None else v for v in test_loss], float)
    best = int(np.argmin(loss)) if loss.size else None
    spe = result["steps_per_epoch"]
    final_test, final_train = (test_loss[-1] if test_loss else None), (train_loss[-1] if train_loss else None)
    out = {
        "learning_rate": rep["learning_rate"],
        "setting": setting(rep),
        "seed": rep["seed"],
        "diverged": rep["diverged"],
        "diverged_at_step": rep["diverged_at_step"],
        "reached": hit is not None,
        "steps_to_target": None,
        "epochs_to_target": None,
        "examples_to_target": None,
        "tokens_to_target": None,
        "unstable_at_step": None,
        "coarse_steps": False,
        "pruned_at_step": rep.get("pruned_at_step"),
        "final_train_loss": final_train,
        "final_test_loss": final_test,
        "min_test_loss": None if best is None else float(loss[best]),
        "epoch_of_min_test_loss": None if best is None else t_steps[best] / spe,
        "test_loss_rise": None if best is None else float(loss[-1] - loss[best]),
        "train_test_gap": _gap(final_test, final_train),
        "oscillation": oscillation(rep),
    }
    try:
        _, accuracy = _before(*series(rep, "test_accuracy"), until)
        out["best_test_accuracy"] = max((v for v in accuracy if v is not None), default=None)
        out["final_test_accuracy"] = accuracy[-1] if accuracy else None
    except KeyError:  # a regression: no accuracy
        pass
    if hit is not None:
        s = steps[hit]
        out["steps_to_target"] = s
        out["epochs_to_target"] = s / spe
        out["examples_to_target"] = examples_at(s, spe, counted_examples(result), result["batch_size"])
        out["tokens_to_target"] = out["examples_to_target"] * result.get("tokens_per_example", 1)
        out["unstable_at_step"] = _unstable_at(rep, s)
        pruned = rep.get("pruned_at_step")
        out["coarse_steps"] = pruned is not None and s > pruned  # found at a coarse point only
    out["stable"] = not rep["diverged"] and out["unstable_at_step"] is None
    return out


def oscillation(rep: dict[str, Any]) -> float | None:
    """How much of the objective's movement goes uphill: the training loss on the fixed
    sample (``curve.sample_loss``, evaluated at every fine point on the same rows, so
    sampling noise plays no part), the sum of its rises in log loss over the sum of all its
    moves, before any divergence. 0: it only falls; 0.5: as much up as down (wandering);
    None: not measured, or it never moved (a model that does not train).

    Example:
      >>> rep = {"diverged": False, "curve": {"step": [0, 1, 2, 3], "sample_loss": [4.0, 2.0, 4.0, 1.0]}}
      >>> round(oscillation(rep), 3)  # log moves -0.69, +0.69, -1.39: 0.69 of 2.77 up
      0.25
    """
    if "sample_loss" not in rep.get("curve", {}):
        return None
    until = rep.get("diverged_at_step") if rep.get("diverged") else None
    _, values = _before(rep["curve"]["step"], rep["curve"]["sample_loss"], until)
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


def setting(rep: dict[str, Any]) -> tuple:
    """A replica's swept hyperparameters as a sortable key: the learning rate alone, or
    (name, value) pairs when more than the learning rate is swept (``hyperparameters``
    also holds per-batch-size values such as a schedule's budget: those are not swept)."""
    swept = rep.get("swept")
    if not swept:
        return (("learning_rate", rep["learning_rate"]),)
    return tuple(sorted((k, rep["hyperparameters"][k]) for k in swept))


def best_replicas(result: dict[str, Any], row: dict[str, Any]) -> list[dict[str, Any]]:
    """The replicas (one per seed) of a table row's best setting."""
    best = {"learning_rate": row["best_learning_rate"], **row.get("best_hyperparameters", {})}
    return [r for r in result["replicas"] if dict(setting(r)) == best]


def best_setting(summaries: list[dict[str, Any]]) -> tuple:
    """``best_learning_rate``'s rule over every swept hyperparameter's grid: the setting
    (learning rate, momentum, ...) whose seeds best reach the target."""
    by: dict[tuple, list[dict[str, Any]]] = {}
    for s in summaries:
        by.setdefault(s.get("setting", (("learning_rate", s["learning_rate"]),)), []).append(s)
    return min(by, key=lambda k: (rank(by[k]), k))


def best_learning_rate(summaries: list[dict[str, Any]]) -> float:
    """The learning rate whose seeds reach the target and stay stable (no divergence, no
    blow-up after the target) most often, then reach it most often, then in the fewest
    mean steps, ties broken by the lower mean final test loss.

    Example:
      >>> rows = [dict(learning_rate=lr, reached=ok, stable=st, steps_to_target=s, final_test_loss=f)
      ...         for lr, ok, st, s, f in [(0.1, True, True, 50, 0.3), (1.0, True, True, 20, 0.2),
      ...                                  (3.0, True, False, 10, 0.2), (10.0, False, False, None, None)]]
      >>> best_learning_rate(rows)  # 3.0 is faster, but blew up after reaching the target
      1.0
    """
    by_lr: dict[float, list[dict[str, Any]]] = {}
    for s in summaries:
        by_lr.setdefault(s["learning_rate"], []).append(s)
    return min(by_lr, key=lambda lr: rank(by_lr[lr]))


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
    "steps_to_target", "epochs_to_target", "examples_to_target", "tokens_to_target", "seconds_to_target",
    "best_test_accuracy", "final_test_accuracy", "final_train_loss", "final_test_loss",
    "min_test_loss", "epoch_of_min_test_loss", "test_loss_rise", "train_test_gap",
)  # fmt: skip
LEVEL = 0.95  # every interval in the tables


def batch_size_summary(result: dict[str, Any], metric: str, target: float, num_train: int) -> dict[str, Any]:
    """The table row of one batch size: its best learning rate and, at that rate, every
    metric as a spread over seeds. Wall-clock time to target is steps to target times the
    single-model seconds per step measured in the interleaved timing rounds (compile
    excluded); its interval combines the seeds' t interval of steps with the rounds'
    interval of the median time per step. No timing yet (an interrupted sweep): no seconds."""
    timing = result.get("timing")
    per_step = timing["seconds_per_step"] if timing else None
    summaries = [replica_summary(rep, result, metric, target) for rep in result["replicas"]]
    for s in summaries:
        s["seconds_to_target"] = None if s["steps_to_target"] is None or not timing else s["steps_to_target"] * per_step
    best = best_setting(summaries)
    lr = dict(best)["learning_rate"]
    at_best = [s for s in summaries if s["setting"] == best]
    others = {k: v for k, v in best if k != "learning_rate"}
    along = [s for s in summaries if all(dict(s["setting"]).get(k) == v for k, v in others.items())]
    row = {
        "regime": regime(result["batch_size"], num_train),
        "batch_size": result["batch_size"],
        "tokens_per_batch": result["batch_size"] * result.get("tokens_per_example", 1),
        "steps_per_epoch": result["steps_per_epoch"],
        "best_learning_rate": lr,
        "best_hyperparameters": others,
        "extended": sorted({r["learning_rate"] for r in result["replicas"] if r.get("extension")}),
        "lr_edge": learning_rate_edge(along, lr),
        "reached": sum(s["reached"] for s in at_best),
        "stable": sum(s["stable"] for s in at_best),
        "coarse_steps": any(s.get("coarse_steps") for s in at_best),
        "seeds": len(at_best),
        "samples_per_second": None if not timing else result["batch_size"] / per_step,
        "seconds_per_epoch": None if not timing else timing["seconds_per_epoch"],
        "diverged_fraction": sum(s["diverged"] for s in summaries) / len(summaries),
        "budget_steps": result["budget_steps"],
        "efficiency": efficiency(time_accounting(result)),
        "seconds_to_target_interval": None,
    }
    for name in AGGREGATED:
        row[name] = spread([s.get(name) for s in at_best])
    reached = [s["steps_to_target"] for s in at_best if s["reached"]]
    if reached and timing:
        steps = mean_interval(reached, LEVEL, log=True)
        row["seconds_to_target_interval"] = list(product_interval(steps, tuple(timing["seconds_per_step_interval"])))
    return {"row": row, "replicas": summaries, "noise": noise_summary(result, row)}


def time_accounting(result: dict[str, Any]) -> dict[str, float] | None:
    """Where a batch size's wall time went: the training phase's parts (``sweep.Clock``:
    train, evaluate, noise, compile, other) plus its share of the interleaved timing (its
    first call counts as compile, its rounds as ``timing``)."""
    time = result.get("time")
    if time is None:
        return None
    timing = result.get("timing") or {}
    first, rounds = timing.get("first_call_seconds", 0.0), sum(timing.get("epoch_seconds", ()))
    return time | {"compile": time["compile"] + first, "timing": rounds, "wall": time["wall"] + first + rounds}


def efficiency(time: dict[str, float] | None) -> float | None:
    """The share of a batch size's wall time, compilation left out, spent training:
    ``train / (wall - compile - c11_demo)`` (the C11 demonstration compiles on purpose)."""
    rest = time and time["wall"] - time["compile"] - time.get("c11_demo", 0.0)
    if not time or rest <= 0:
        return None
    return time["train"] / rest


def fastest(rows: list[dict[str, Any]]) -> list[int]:
    """The batch sizes whose seconds-to-target interval overlaps the fastest one's: the set
    the measurement cannot tell apart from the fastest (empty when none was timed)."""
    timed = [s["row"] for s in rows if s["row"]["seconds_to_target_interval"]]
    return tie_set({r["batch_size"]: tuple(r["seconds_to_target_interval"]) for r in timed},
                   {r["batch_size"]: r["seconds_to_target"]["mean"] for r in timed})  # fmt: skip


def noise_summary(result: dict[str, Any], row: dict[str, Any]) -> dict[str, Any] | None:
    """``B_simple`` along training at the row's best learning rate (mean over its seeds,
    diverged ones left out), its value at the checkpoint nearest the target, and its
    average along the way there (``along``: the geometric mean over the checkpoints up to
    the target, which are log-spaced, so an average over log time; McCandlish et al. 2018
    predict B_crit from the noise scale averaged along training, not from its end)."""
    reps = [r for r in best_replicas(result, row) if not r["diverged"]]
    reps = [r for r in reps if r.get("noise", {}).get("step")]
    if not reps:
        return None
    steps = reps[0]["noise"]["step"]
    values = np.array([[np.nan if v is None else v for v in r["noise"]["b_simple"]] for r in reps], float)
    with np.errstate(invalid="ignore"):
        mean = np.nanmean(values, 0) if np.isfinite(values).any() else np.full(len(steps), np.nan)
    target = row["steps_to_target"]["mean"]
    at = int(np.argmin([abs(math.log(s / target)) for s in steps])) if target else None
    before = [v for s, v in zip(steps, mean, strict=True) if target and s <= target and math.isfinite(v) and v > 0]
    return {
        "step": steps,
        "b_simple": [None if not math.isfinite(v) else float(v) for v in mean],
        "at_target": None if at is None or not math.isfinite(mean[at]) else float(mean[at]),
        "at_target_step": None if at is None else steps[at],
        # along the way: the geometric mean over the (log-spaced) checkpoints up to the target
        "along": float(np.exp(np.mean(np.log(before)))) if before else None,
    }


def noise_averaged(rows: list[dict[str, Any]]) -> float | None:
    """A sweep's B_simple averaged along training: the median over batch sizes of each one's
    ``noise_summary(...)["along"]``; None when none was measured before its target."""
    along = [s["noise"]["along"] for s in rows if s["noise"] and s["noise"].get("along")]
    return float(np.median(along)) if along else None


def at_start(rows: list[dict[str, Any]]) -> list[int]:
    """The batch sizes whose best setting had a seed at the target before any update (step
    0: an easy target, or a strong initial model): they say nothing about how steps scale
    with B, and S(B) > 0 cannot describe them, so the trade-off fit leaves them out."""
    return [s["row"]["batch_size"] for s in rows if s["row"]["steps_to_target"]["n"]
            and s["row"]["steps_to_target"]["min"] == 0]  # fmt: skip


def sweep_fit(rows: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The S(B) trade-off fitted to the batch sizes that reached the target after at least
    one update (``at_start``), with a bootstrap interval for B_crit and the batch sizes
    whose points are bounds (their best learning rate is on an edge of the grid:
    ``learning_rate_edge``); None with fewer than 3 such batch sizes."""
    from jbatch.tradeoff import bootstrap, fit_steps

    early = at_start(rows)
    reached = [s for s in rows if s["row"]["steps_to_target"]["n"] and s["row"]["batch_size"] not in early]
    if len({s["row"]["batch_size"] for s in reached}) < 3:
        return None
    b = [s["row"]["batch_size"] for s in reached]
    fit = fit_steps(b, [s["row"]["steps_to_target"]["mean"] for s in reached])
    per_size = {s["row"]["batch_size"]: [r["steps_to_target"] for r in s["replicas"] if r["reached"] and
                                         dict(r["setting"]) == {"learning_rate": s["row"]["best_learning_rate"],
                                                                **s["row"].get("best_hyperparameters", {})}]
                for s in reached}  # fmt: skip
    fit["interval"] = bootstrap(per_size)
    fit["bounds"] = [s["row"]["batch_size"] for s in reached if s["row"]["lr_edge"]]
    if early:
        fit["at_start"] = early
    return fit
