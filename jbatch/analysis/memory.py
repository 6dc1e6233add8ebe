"""Memory per batch size, from what a sweep recorded: XLA's plan of each batch size's compiled
training program (``engine.memory_of``: arguments, outputs, temporaries, aliased bytes) and the
process's peak resident memory after it; a line fitted through the plans predicts the largest
batch size that fits a given memory (the training split, weights and optimizer state are the
intercept; activations and gradients per example the slope)."""

from __future__ import annotations

from typing import Any

import numpy as np


def planned(memory: dict[str, int] | None) -> int | None:
    """The bytes a program's plan holds at once, at most: arguments, outputs and temporaries,
    less the outputs that alias arguments (XLA's CPU ``peak_memory`` leaves the temporaries
    out). None without a plan.

    Examples:
      >>> planned({"argument_size": 100, "output_size": 80, "alias_size": 80, "temp_size": 30})
      130
    """
    if not memory:
        return None
    keys = ("argument_size", "output_size", "temp_size")
    return int(sum(memory.get(k, 0) for k in keys) - memory.get("alias_size", 0))


def line(plans: dict[int, int]) -> tuple[float, float] | None:
    """Least squares ``bytes = intercept + per_example * B`` through the plans of two or more
    batch sizes (None with fewer, or a slope that is not positive: nothing to extrapolate).

    Examples:
      >>> [round(v, 6) for v in line({1: 1100, 10: 2000, 100: 11000})]
      [1000.0, 100.0]
    """
    if len(plans) < 2:
        return None
    b = np.array(sorted(plans), float)
    y = np.array([plans[int(x)] for x in b], float)
    slope, intercept = np.polyfit(b, y, 1)
    return (float(intercept), float(slope)) if slope > 0 else None


def largest_within(plans: dict[int, int], capacity: float) -> int | None:
    """The largest batch size whose predicted plan (``line``) is within ``capacity`` bytes; None
    where the line cannot say (or not even B = 1 fits).

    Examples:
      >>> largest_within({1: 1100, 10: 2000, 100: 11000}, 2**20)
      10475
    """
    fit = line(plans)
    if fit is None:
        return None
    intercept, slope = fit
    b = int((capacity - intercept) // slope)
    return b if b >= 1 else None


def rows(doc: Any) -> list[dict[str, Any]]:
    """Per batch size of a sweep document: its plan's parts and total (``planned``) and the
    process's peak resident bytes after it (None where not recorded)."""
    out = []
    for b in sorted(int(k) for k in doc.batch_sizes):
        r = doc.result(b)
        m = r.memory or {}
        out.append(
            {
                "batch_size": b,
                "argument": m.get("argument_size"),
                "output": m.get("output_size"),
                "temp": m.get("temp_size"),
                "planned": planned(r.memory),
                "peak_rss": r.peak_rss,
            }
        )
    return out
