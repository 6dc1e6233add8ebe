"""The steps / examples trade-off of McCandlish et al. (2018), fitted to a sweep.

``S(B) = S_min (1 + B_noise / B)``; examples follow from steps (``E = S B``), so
``E(B) = E_min (1 + B / B_noise)`` with ``E_min = S_min B_noise`` and the critical batch
size ``B_crit = E_min / S_min = B_noise``. There is ONE fit, to the steps: fitting the
examples as well would fit the same numbers twice (their columns multiplied by B) and
report the trivial E ~ B trend as fit quality.

The fit minimises squared log errors (every batch size weighs the same, whatever its step
count): for a given ``B_noise``, ``log S_min`` is a mean, so the search is one-dimensional
(a log grid, then golden-section refinement). ``B_noise`` is searched within a factor
``SPAN`` of the measured batch sizes; an optimum on that edge means the data do not bend
and ``B_crit`` is only bounded (``bound``). Its interval comes from a bootstrap over the
seeds and over the set of batch sizes (``bootstrap``).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

SPAN = 1e3  # B_noise is searched in [min(B) / SPAN, max(B) * SPAN]


def _edges(b: np.ndarray) -> tuple[float, float]:
    """The log ends of the search for B_noise given the batch sizes ``b``."""
    return math.log(float(np.min(b)) / SPAN), math.log(float(np.max(b)) * SPAN)


def _at(log_b_noise: Any, end: float) -> Any:
    """Whether a fitted log B_noise lies at a search edge ``end`` (within 5%)."""
    return np.abs(log_b_noise - end) < 0.05


def _sse(log_b_noise: np.ndarray, b: np.ndarray, log_s: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Squared-log-error sums and log S_min, for candidates ``log_b_noise [D, G]`` and
    data sets ``b, log_s [D, P]`` (D fits at once, G candidates each)."""
    shape = np.log1p(np.exp(log_b_noise)[:, :, None] / b[:, None, :])  # log(1 + B_noise / B)
    log_s_min = np.mean(log_s[:, None, :] - shape, axis=2)
    resid = log_s[:, None, :] - shape - log_s_min[:, :, None]
    return np.sum(resid**2, axis=2), log_s_min


def _best_log_b_noise(b: np.ndarray, log_s: np.ndarray) -> np.ndarray:
    """The least-squares log B_noise of each of the D data sets ``b, log_s [D, P]``: a log
    grid over the search range, then golden-section refinement in the bracketing cells."""
    lo, hi = np.log(b.min(1) / SPAN), np.log(b.max(1) * SPAN)
    grid = lo[:, None] + (hi - lo)[:, None] * np.linspace(0, 1, 241)[None, :]
    sse, _ = _sse(grid, b, log_s)
    i = np.argmin(sse, axis=1)
    rows = np.arange(len(b))
    a, c = grid[rows, np.maximum(i - 1, 0)], grid[rows, np.minimum(i + 1, grid.shape[1] - 1)]
    golden = (math.sqrt(5) - 1) / 2
    for _ in range(40):
        x1, x2 = c - golden * (c - a), a + golden * (c - a)
        f = _sse(np.stack([x1, x2], 1), b, log_s)[0]
        left = f[:, 0] <= f[:, 1]
        a, c = np.where(left, a, x1), np.where(left, x2, c)
    return (a + c) / 2


def fit_steps(batch_sizes: Sequence[float], steps: Sequence[float]) -> dict[str, Any]:
    """Fits ``S(B) = S_min (1 + B_noise / B)`` to steps to target; needs 3 or more batch sizes.

    Returns ``s_min``, ``b_crit`` (= ``B_noise``), ``e_min`` (= ``s_min * b_crit``), the RMS
    error of the logs as a relative error, the same for the two one-parameter limits the
    hyperbola sits between (perfect scaling ``S = c / B``, no scaling ``S = c``), and
    ``bound``: None, or "above"/"below" when the best ``B_noise`` is on the search edge
    (``B_crit`` is then only known to lie above the largest / below the smallest B).

    Examples:
      >>> b = np.array([1, 4, 16, 64, 256, 1024.0])
      >>> f = fit_steps(b, 100 * (1 + 50 / b))
      >>> round(f["s_min"]), round(f["b_crit"]), round(f["e_min"]), f["bound"]
      (100, 50, 5000, None)
    """
    b, s = np.asarray(batch_sizes, float), np.asarray(steps, float)
    if len(b) < 3 or len(set(b.tolist())) < 3:
        raise ValueError(f"a trade-off fit needs at least 3 batch sizes that reached the target, got {len(set(b))}")
    if np.any(s <= 0) or np.any(b <= 0):
        raise ValueError("batch sizes and steps must be positive")
    log_s = np.log(s)
    x = float(_best_log_b_noise(b[None], log_s[None])[0])
    sse, log_s_min = (v[0] for v in _sse(np.array([[x]]), b[None], log_s[None]))
    edge = bool(_at(x, _edges(b)[0]) or _at(x, _edges(b)[1]))
    perfect = np.log(s * b) - np.mean(np.log(s * b))  # S = c / B
    flat = log_s - log_s.mean()  # S = c
    spread = float(np.sum((log_s - log_s.mean()) ** 2))
    b_noise = math.exp(x)
    return {
        "s_min": math.exp(float(log_s_min[0])),
        "b_crit": b_noise,
        "e_min": math.exp(float(log_s_min[0])) * b_noise,
        "rms_rel_error": math.expm1(math.sqrt(float(sse[0]) / len(b))),
        "rms_rel_error_perfect_scaling": math.expm1(math.sqrt(float(np.mean(perfect**2)))),
        "rms_rel_error_no_scaling": math.expm1(math.sqrt(float(np.mean(flat**2)))),
        "r2_log": 1 - float(sse[0]) / spread if spread > 0 else float("nan"),
        "bound": None if not edge else ("above" if x > math.log(b.max()) else "below"),
        "points": len(b),
    }


def bootstrap(
    per_size: Mapping[float, Sequence[float]], draws: int = 1000, seed: int = 0, level: float = 0.95
) -> dict[str, Any]:
    """A percentile interval for ``B_crit`` from the seeds' spread: each draw keeps the
    measured batch sizes (the design is fixed, not resampled: a draw without the largest
    ones would pin B_crit at the fit's search edge) and resamples, within each, its seeds'
    steps to target with replacement, then refits. ``per_size`` maps B to the steps of each
    seed that reached the target. With one seed at every batch size there is no spread:
    ``low`` and ``high`` are None. ``low_edge`` / ``high_edge`` flag an end that lies at
    the fit's search edge (``SPAN``): there the data do not bound B_crit.

    Examples:
      >>> b = [1, 4, 16, 64, 256]
      >>> ci = bootstrap({x: [100 * (1 + 50 / x) * f for f in (0.95, 1.0, 1.05)] for x in b}, draws=200)
      >>> ci["low"] < 50 < ci["high"], ci["draws"], ci["high_edge"]
      (True, 200, False)
      >>> bootstrap({x: [100 * (1 + 50 / x)] for x in b})["low"] is None  # one seed each: no interval
      True
    """
    data = tuple((b, tuple(float(x) for x in v)) for b, v in per_size.items() if len(v))
    if len(data) < 3:
        raise ValueError("a bootstrap needs at least 3 batch sizes that reached the target")
    return dict(_bootstrap(data, draws, seed, level))


@functools.lru_cache(maxsize=256)
def _bootstrap(data: tuple, draws: int, seed: int, level: float) -> dict[str, Any]:
    """``bootstrap`` of ``data`` (B and its seeds' steps, as tuples), kept by its inputs: a
    report asks for the same fit more than once (the table's and the ladder's level at the
    target), and the draws are a pure function of them."""
    per_size = dict(data)
    sizes = list(per_size)
    rng = np.random.default_rng(seed)
    b = np.tile(np.asarray(sizes, float), (draws, 1))
    log_s = np.empty((draws, len(sizes)))
    for j, size in enumerate(sizes):
        steps = np.asarray(per_size[size], float)
        log_s[:, j] = np.log(steps[rng.integers(0, len(steps), (draws, len(steps)))].mean(1))
    x = _best_log_b_noise(b, log_s)
    lo_edge, hi_edge = _edges(np.asarray(sizes, float))
    tail = (1 - level) / 2 * 100
    low, high = np.percentile(np.exp(x), [tail, 100 - tail])
    varied = any(len(per_size[size]) > 1 for size in sizes)
    return {
        "low": float(low) if varied else None,
        "high": float(high) if varied else None,
        "level": level,
        "draws": draws,
        "on_search_edge": float(np.mean(_at(x, lo_edge) | _at(x, hi_edge))),
        "low_edge": bool(varied and _at(math.log(low), lo_edge)),
        "high_edge": bool(varied and _at(math.log(high), hi_edge)),
    }


def interval_bounds(ci: dict[str, Any]) -> tuple[float, float] | None:
    """A bootstrap interval's ends, an end at the search edge as unbounded (0 or infinity);
    None when there is no interval (one seed per batch size).

    Examples:
      >>> interval_bounds({"low": 245.0, "high": 64000.0, "low_edge": False, "high_edge": True})
      (245.0, inf)
    """
    if ci.get("low") is None:
        return None
    return (0.0 if ci.get("low_edge") else ci["low"]), (math.inf if ci.get("high_edge") else ci["high"])


def steps_curve(fit: dict[str, Any], b: np.ndarray) -> np.ndarray:
    """``S(B) = S_min (1 + B_crit / B)`` with the fitted ``S_min`` and ``B_crit``."""
    return fit["s_min"] * (1 + fit["b_crit"] / b)


def examples_curve(fit: dict[str, Any], b: np.ndarray) -> np.ndarray:
    """``E(B) = E_min (1 + B / B_crit)``."""
    return fit["e_min"] * (1 + b / fit["b_crit"])
