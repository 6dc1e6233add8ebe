"""The critical batch size against the amount of data, from the data-scaling study's sweeps
(``sweeps.studies``: one per model and nested training-set size of MNIST-1D).

Zhang et al. (2024) and Bergsma et al. (2025) report that the critical batch size grows
with the amount of data, as a power law, hardly with model size. Here ``B_crit`` is fitted
per size (with its bootstrap interval), and ``B = c N^k`` to them and to the measured noise
scale B_simple (its median near the target over the batch sizes), with a 95% interval for
each exponent (``report.datascaling`` writes the table, plot and JSON).
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from jbatch.analysis.summary import summarize, sweep_fit, time_accounting
from jbatch.analysis.tradeoff import interval_bounds
from jbatch.results import SWEEP, read_sweep
from jbatch.results.records import DataScalingRow, PowerLaw


def power_law(n: np.ndarray, values: np.ndarray, sigma: np.ndarray, draws: int = 2000, seed: int = 0) -> PowerLaw:
    """``values = c n^k`` by least squares on the logs, and a 95% interval of ``k`` from a
    parametric bootstrap (each log value drawn with its standard deviation ``sigma``).

    Examples:
      >>> f = power_law(np.array([1e3, 1e4, 1e5]), np.array([10.0, 31.6, 100.0]), np.full(3, 0.01))
      >>> round(f.exponent, 2), f.low < 0.5 < f.high
      (0.5, True)
    """
    x, y = np.log(n), np.log(values)
    k, a = np.polyfit(x, y, 1)
    rng = np.random.default_rng(seed)
    ks = np.polyfit(x, (y + rng.normal(0, sigma, (draws, len(y)))).T, 1)[0]  # all draws in one fit
    lo, hi = np.percentile(ks, [2.5, 97.5])
    return PowerLaw(exponent=float(k), prefactor=float(math.exp(a)), low=float(lo), high=float(hi))


def collect(root: Path) -> list[DataScalingRow]:
    """One row per sweep ``root/<model>-<size>/`` there is, by model then size: B_crit with
    its interval, B_simple near the target, the target and the sweep's wall time (every
    sweep the study ran, whatever models and sizes it was given)."""
    found = sorted(
        (d.name.rsplit("-", 1)[0], int(d.name.rsplit("-", 1)[1]), d)
        for d in Path(root).glob("*-*")
        if d.name.rsplit("-", 1)[1].isdigit() and (d / SWEEP).exists()
    )
    rows = []
    for model, n, d in found:
        doc = read_sweep(d)
        summaries = summarize(doc)
        fit = sweep_fit(summaries)
        near = [s["noise"]["at_target"] for s in summaries if s["noise"] and s["noise"]["at_target"]]
        wall = sum((time_accounting(r) or {"wall": 0})["wall"] for r in doc.results)
        bounds = (interval_bounds(fit["interval"]) if fit else None) or (None, None)
        rows.append(
            DataScalingRow(
                model=model,
                n=n,
                target=doc.config.target.value,
                b_crit=fit["b_crit"] if fit else None,
                low=bounds[0],
                high=bounds[1],
                bound=fit["bound"] if fit else None,
                b_simple=float(np.median(near)) if near else None,
                b_simple_all=near,
                wall_seconds=wall,
                metadata=doc.metadata,
            )
        )
    return rows


def fits(rows: list[DataScalingRow]) -> dict[str, dict[str, PowerLaw]]:
    """Per model: the power laws of B_crit and of B_simple against N."""
    out = {}
    for model in sorted({r.model for r in rows}):
        mine = [r for r in rows if r.model == model and r.b_crit]
        if len(mine) < 2:
            continue
        n = np.array([r.n for r in mine], float)
        crit = np.array([r.b_crit for r in mine])
        sigma = np.array([(math.log(r.high) - math.log(r.low)) / (2 * 1.96) for r in mine])
        entry = {"b_crit": power_law(n, crit, sigma)}
        simple = [r for r in mine if r.b_simple]
        if len(simple) >= 2:
            spread = np.array([np.std(np.log(r.b_simple_all)) / math.sqrt(len(r.b_simple_all)) + 1e-3 for r in simple])
            entry["b_simple"] = power_law(
                np.array([r.n for r in simple], float), np.array([r.b_simple for r in simple]), spread
            )
        out[model] = entry
    return out
