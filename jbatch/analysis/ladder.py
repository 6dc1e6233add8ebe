"""The critical batch size against the target, from one sweep: no new training.

Every run's curve holds every level of the target metric it crossed. For a ladder of
levels between where training starts and the sweep's target, each batch size gets its
best setting *for that level* and its steps to it, and the trade-off is fitted per level
(``summary.sweep_fit``): the curve ``B_crit(level)``. Next to it, the gradient noise scale
measured along training (at the best setting's checkpoints), placed at the value the
metric had there: McCandlish et al. (2018) and Merrill et al. (2025) expect both to grow as
training goes on. Levels up to the sweep's target are resolved to the fine cadence (the target's split is
evaluated finely until a run reaches the target); a level whose best runs were found at a
coarse point only is marked, and so is every level past the target (there, only the
coarse points remain).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from jbatch.analysis.selection import best_replicas, series
from jbatch.analysis.summary import summarize, sweep_fit
from jbatch.results.records import BatchSizeResult, SweepDocument

LEVELS = 6


BEYOND = 2  # levels past the sweep's target, up to the best that 3 batch sizes reached


def levels(doc: SweepDocument, count: int = LEVELS) -> list[float]:
    """``count`` levels of the target metric, evenly spaced from halfway between its median
    starting value and the target, to the target; then up to ``BEYOND`` levels past it, to
    the best value that at least three batch sizes reached (the third best of each batch
    size's best value), when that is past the target."""
    metric, target = doc.config.target.metric, doc.config.target.value
    higher = doc.config.target.higher_is_better
    starts = [values[0] for r in doc.results for rep in r.replicas if (values := series(rep, metric)[1])]
    starts = [v for v in starts if v is not None and math.isfinite(v)]
    if not starts:
        return [target]
    start = float(np.median(starts))
    out = [float(f"{v:.4g}") for v in np.linspace(start + (target - start) / 2, target, count)]
    best = sorted((v for r in doc.results if (v := _best_value(r, metric, higher)) is not None), reverse=higher)
    if len(best) >= 3 and (best[2] > target if higher else best[2] < target):
        step = (best[2] - target) / BEYOND
        out += [float(f"{target + step * (i + 1):.4g}") for i in range(BEYOND)]
    return [v for i, v in enumerate(out) if v not in out[:i]]


def _best_value(result: BatchSizeResult, metric: str, higher: bool) -> float | None:
    values = [
        v
        for rep in result.replicas
        if not rep.diverged
        for v in series(rep, metric)[1]
        if v is not None and math.isfinite(v)
    ]
    return (max if higher else min)(values, default=None)


def ladder(doc: SweepDocument, count: int = LEVELS) -> list[dict[str, Any]]:
    """Per level: the fit of the trade-off (None with fewer than 3 batch sizes there), the
    batch sizes that reached it, and whether any best runs there were coarse-resolved."""
    out = []
    higher, target = doc.config.target.higher_is_better, doc.config.target.value
    beyond = lambda v: v > target if higher else v < target  # noqa: E731 (fine evaluations stop at the target)
    for level in levels(doc, count):
        rows = summarize(doc, level)
        fit = sweep_fit(rows)
        out.append(
            {
                "level": level,
                "fit": fit,
                "reached": [s["row"]["batch_size"] for s in rows if s["row"]["steps_to_target"]["n"]],
                "coarse": any(s["row"]["coarse_steps"] for s in rows) or beyond(level),
                "steps": {s["row"]["batch_size"]: s["row"]["steps_to_target"]["mean"] for s in rows},
            }
        )
    return out


def noise_along(doc: SweepDocument, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """B_simple at each checkpoint of each batch size's best setting, with the value the
    target metric had at that step (mean over seeds; the nearest evaluated point)."""
    metric = doc.config.target.metric
    out = []
    for s in rows:
        n = s["noise"]
        if not n:
            continue
        reps = best_replicas(doc.result(s["row"]["batch_size"]).replicas, s["row"])
        for step, b in zip(n["step"], n["b_simple"], strict=True):
            vals = []
            for rep in reps:
                steps, values = series(rep, metric)
                pts = [(abs(st - step), v) for st, v in zip(steps, values, strict=True) if v is not None]
                if pts:
                    vals.append(min(pts)[1])
            if vals and b is not None:
                out.append(
                    {"batch_size": s["row"]["batch_size"], "step": step, "level": float(np.mean(vals)), "b_simple": b}
                )
    return out
