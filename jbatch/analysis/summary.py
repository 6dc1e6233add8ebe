"""From raw sweep curves to the numbers in the tables: targets, best learning rates, spreads.

Pure functions of the JSON document: ``jbatch report`` recomputes everything from it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import msgspec
import numpy as np

from jbatch.analysis.selection import best_replicas, best_setting, learning_rate_edge, replica_summary
from jbatch.analysis.stats import mean_interval, product_interval, tie_set
from jbatch.analysis.tradeoff import bootstrap, fit_steps
from jbatch.results.records import BatchSizeResult, Metadata, SweepDocument


def result_metadata(doc: SweepDocument, result: BatchSizeResult) -> Metadata:
    """Where and with what ``result`` (one batch size) was measured: its own metadata, the
    document's where it has none (a resumed or ``--force``d sweep mixes runs, and the
    document keeps its first)."""
    return result.metadata or doc.metadata


def regime(batch_size: int, num_train: int) -> str:
    """``full-batch`` (B = N), ``stochastic`` (B = 1) or ``mini-batch``."""
    if batch_size >= num_train:
        return "full-batch"
    return "stochastic" if batch_size == 1 else "mini-batch"


def spread(values: Sequence[float | None]) -> dict[str, Any]:
    """Mean, sample standard deviation (ddof=1: seeds are a sample; 0 for a single value),
    min and max over seeds, and how many values there were.

    Examples:
      >>> spread([1.0, 2.0, 3.0, None])["std"]
      1.0
    """
    v = np.asarray([x for x in values if x is not None and math.isfinite(x)], float)
    if v.size == 0:
        return {"mean": None, "std": None, "min": None, "max": None, "n": 0}
    std = float(v.std(ddof=1)) if v.size > 1 else 0.0
    return {"mean": float(v.mean()), "std": std, "min": float(v.min()), "max": float(v.max()), "n": int(v.size)}


AGGREGATED = (
    "steps_to_target",
    "epochs_to_target",
    "examples_to_target",
    "tokens_to_target",
    "seconds_to_target",
    "best_test_accuracy",
    "final_test_accuracy",
    "final_train_loss",
    "final_test_loss",
    "min_test_loss",
    "epoch_of_min_test_loss",
    "test_loss_rise",
    "train_test_gap",
)
LEVEL = 0.95  # every interval in the tables
MIN_ROUNDS = 6  # timing rounds the median's 95% interval needs (the range of 6 covers 96.9%; of 5, 93.8%)


def batch_size_summary(result: BatchSizeResult, metric: str, target: float, num_train: int) -> dict[str, Any]:
    """The table row of one batch size: its best learning rate and, at that rate, every
    metric as a spread over seeds. Wall-clock time to target is steps to target times the
    single-model seconds per step measured in the interleaved timing rounds (compile
    excluded); its interval combines the seeds' t interval of steps with the rounds'
    interval of the median time per step. No timing yet (an interrupted sweep): no seconds."""
    timing = result.timing
    per_step = timing.seconds_per_step if timing else None
    summaries = [replica_summary(rep, result, metric, target) for rep in result.replicas]
    for s in summaries:
        s["seconds_to_target"] = None if s["steps_to_target"] is None or not timing else s["steps_to_target"] * per_step
    best = best_setting(summaries)
    lr = dict(best)["learning_rate"]
    at_best = [s for s in summaries if s["setting"] == best]
    others = {k: v for k, v in best if k != "learning_rate"}
    along = [s for s in summaries if all(dict(s["setting"]).get(k) == v for k, v in others.items())]
    row = {
        "regime": regime(result.batch_size, num_train),
        "batch_size": result.batch_size,
        "tokens_per_batch": result.batch_size * result.tokens_per_example,
        "steps_per_epoch": result.steps_per_epoch,
        "best_learning_rate": lr,
        "best_hyperparameters": others,
        "extended": sorted({r.learning_rate for r in result.replicas if r.extension}),
        "lr_edge": learning_rate_edge(along, lr),
        "reached": sum(s["reached"] for s in at_best),
        "stable": sum(s["stable"] for s in at_best),
        "coarse_steps": any(s.get("coarse_steps") for s in at_best),
        "seeds": len(at_best),
        "samples_per_second": None if not timing else result.batch_size / per_step,
        "seconds_per_epoch": None if not timing else timing.seconds_per_epoch,
        "diverged_fraction": sum(s["diverged"] for s in summaries) / len(summaries),
        "budget_steps": result.budget_steps,
        "efficiency": efficiency(time_accounting(result)),
        "seconds_to_target_interval": None,
    }
    for name in AGGREGATED:
        row[name] = spread([s.get(name) for s in at_best])
    reached = [s["steps_to_target"] for s in at_best if s["reached"]]
    if reached and timing and (timing.rounds or len(timing.epoch_seconds)) >= MIN_ROUNDS:
        steps = mean_interval(reached, LEVEL, log=True)
        row["seconds_to_target_interval"] = list(product_interval(steps, tuple(timing.seconds_per_step_interval)))
    return {"row": row, "replicas": summaries, "noise": noise_summary(result, row)}


def time_accounting(result: BatchSizeResult) -> dict[str, float] | None:
    """Where a batch size's wall time went: the training phase's parts (``sweeps.clock.Clock``:
    train, evaluate, noise, compile, other; ``c11_demo`` in schema 1) plus its share of the
    interleaved timing (its first call counts as compile, its rounds as ``timing``)."""
    if result.time is None:
        return None
    time = {k: v for k, v in msgspec.structs.asdict(result.time).items() if v is not None}
    first = result.timing.first_call_seconds if result.timing else 0.0
    rounds = sum(result.timing.epoch_seconds) if result.timing else 0.0
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
    return tie_set(
        {r["batch_size"]: tuple(r["seconds_to_target_interval"]) for r in timed},
        {r["batch_size"]: r["seconds_to_target"]["mean"] for r in timed},
    )


def noise_summary(result: BatchSizeResult, row: dict[str, Any]) -> dict[str, Any] | None:
    """``B_simple`` along training at the row's best learning rate (mean over its seeds,
    diverged ones left out), its value at the checkpoint nearest the target, and its
    average along the way there (``along``: the geometric mean over the checkpoints up to
    the target, which are log-spaced, so an average over log time; McCandlish et al. 2018
    predict B_crit from the noise scale averaged along training, not from its end)."""
    reps = [r for r in best_replicas(result.replicas, row) if not r.diverged and r.noise and r.noise.step]
    if not reps:
        return None
    steps = reps[0].noise.step
    values = np.array([[np.nan if v is None else v for v in r.noise.b_simple] for r in reps], float)
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


def best_steps(summary: dict[str, Any]) -> list[int]:
    """The steps to target of the seeds of a batch size's best setting that reached it
    (``summary``: one of ``summarize``'s entries)."""
    return [r["steps_to_target"] for r in best_replicas(summary["replicas"], summary["row"]) if r["reached"]]


def at_start(rows: list[dict[str, Any]]) -> list[int]:
    """The batch sizes whose best setting had a seed at the target before any update (step
    0: an easy target, or a strong initial model): they say nothing about how steps scale
    with B, and S(B) > 0 cannot describe them, so the trade-off fit leaves them out."""
    return [
        s["row"]["batch_size"]
        for s in rows
        if s["row"]["steps_to_target"]["n"] and s["row"]["steps_to_target"]["min"] == 0
    ]


def sweep_fit(rows: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The S(B) trade-off fitted to the batch sizes that reached the target after at least
    one update (``at_start``), with a bootstrap interval for B_crit and the batch sizes
    whose points are bounds (their best learning rate is on an edge of the grid:
    ``learning_rate_edge``); None with fewer than 3 such batch sizes."""
    early = at_start(rows)
    reached = [s for s in rows if s["row"]["steps_to_target"]["n"] and s["row"]["batch_size"] not in early]
    if len({s["row"]["batch_size"] for s in reached}) < 3:
        return None
    b = [s["row"]["batch_size"] for s in reached]
    fit = fit_steps(b, [s["row"]["steps_to_target"]["mean"] for s in reached])
    per_size = {s["row"]["batch_size"]: best_steps(s) for s in reached}
    fit["interval"] = bootstrap(per_size)
    fit["bounds"] = [s["row"]["batch_size"] for s in reached if s["row"]["lr_edge"]]
    if early:
        fit["at_start"] = early
    return fit


def summarize(doc: SweepDocument, target: float | None = None) -> list[dict[str, Any]]:
    """One summary per finished batch size, smallest first, for the sweep's target (or
    another ``target`` value of its metric); the fastest set marked."""
    value = doc.config.target.value if target is None else target
    rows = [batch_size_summary(r, doc.config.target.metric, value, doc.num_train) for r in doc.results]
    best = fastest(rows)
    for s in rows:
        s["row"]["fastest"] = s["row"]["batch_size"] in best
    return rows
