"""Intervals for the numbers jbatch compares: a distribution-free interval for a median
(timings are skewed, so no normal approximation), a t interval for a mean over seeds, and
the set of candidates whose intervals overlap the best one (a tie is a tie)."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np
from scipy import stats


def median_interval(values: Sequence[float], level: float = 0.95) -> tuple[float, float]:
    """The order-statistic interval ``[x_(k), x_(n+1-k)]`` for the median with at least
    ``level`` coverage (binomial, no assumption on the distribution). Needs n >= 6 for 95%;
    with fewer values it returns the range, whose coverage is then below ``level``.

    Examples:
      >>> median_interval([5, 1, 4, 2, 3, 7, 6])  # n = 7: the range covers 98.4%
      (1.0, 7.0)
      >>> median_interval(range(1, 21))  # n = 20: x_(6) .. x_(15), 95.9%
      (6.0, 15.0)
    """
    x = np.sort(np.asarray(values, float))
    n = len(x)
    k = 1
    while k + 1 <= n // 2 and stats.binom.cdf(k, n, 0.5) <= (1 - level) / 2:
        k += 1
    return float(x[k - 1]), float(x[n - k])


def mean_interval(values: Sequence[float], level: float = 0.95, log: bool = False) -> tuple[float, float]:
    """Student-t interval for the mean of ``values`` (seeds); a single value has no
    interval, so it is unbounded (``(-inf, inf)``; ``(0, inf)`` with ``log``): one lucky
    seed cannot be told apart from anything. ``log``: for positive quantities that scatter
    by factors (steps to target), the interval of the mean of the logarithms,
    back-transformed: always positive, not symmetric.

    Examples:
      >>> lo, hi = mean_interval([10.0, 12.0, 14.0])
      >>> round(lo, 2), round(hi, 2)  # 12 +- 4.303 * 2 / sqrt(3)
      (7.03, 16.97)
      >>> lo, hi = mean_interval([100.0, 400.0], log=True)  # log-mean 200, t(1) = 12.7: wide, but positive
      >>> 0 < lo < 100 and hi > 400
      True
      >>> mean_interval([986.0], log=True)  # one seed: no interval
      (0.0, inf)
    """
    v = np.asarray(values, float)
    if log:
        lo, hi = mean_interval(np.log(v), level)
        return math.exp(lo), math.exp(hi)
    if v.size < 2:
        return -math.inf, math.inf
    half = stats.t.ppf(0.5 + level / 2, v.size - 1) * v.std(ddof=1) / math.sqrt(v.size)
    return float(v.mean() - half), float(v.mean() + half)


def product_interval(a: tuple[float, float], b: tuple[float, float]) -> tuple[float, float]:
    """The interval of ``x * y`` for positive ``x`` in ``a`` and ``y`` in ``b`` (e.g. steps to
    target times seconds per step): the seeds' spread and the timing noise combined."""
    return a[0] * b[0], a[1] * b[1]


def ratio_interval(a: tuple[float, float], b: tuple[float, float]) -> tuple[float, float]:
    """The interval of ``x / y`` for positive ``x`` in ``a`` and ``y`` in ``b``.

    Examples:
      >>> ratio_interval((2.0, 4.0), (1.0, 2.0))
      (1.0, 4.0)
    """
    return a[0] / b[1] if b[1] > 0 else 0.0, a[1] / b[0] if b[0] > 0 else math.inf


def bounds(interval: Sequence[float | None]) -> tuple[float, float]:
    """An interval as read back from JSON, where an unbounded end (one seed) is None.

    Examples:
      >>> bounds([None, None]), bounds([0.5, 2.0])
      ((-inf, inf), (0.5, 2.0))
    """
    lo, hi = interval
    return -math.inf if lo is None else lo, math.inf if hi is None else hi


def excludes(interval: tuple[float, float], value: float) -> bool:
    """Whether ``value`` lies outside the closed ``interval`` (e.g. a ratio's interval and 1)."""
    return value < interval[0] or value > interval[1]


def tie_set(intervals: Mapping[object, tuple[float, float]], point: Mapping[object, float]) -> list:
    """The candidates whose interval overlaps that of the best (lowest ``point``): the ones
    the measurement cannot tell apart from the best.

    Examples:
      >>> tie_set({1: (4, 6), 2: (5.5, 7), 3: (6.5, 9)}, {1: 5, 2: 6, 3: 7})
      [1, 2]
    """
    if not point:
        return []
    best = min(point, key=point.__getitem__)
    lo, hi = intervals[best]
    return [k for k, (a, b) in intervals.items() if a <= hi and b >= lo]
