"""The steps / examples trade-off of McCandlish et al. (2018), fitted to a sweep.

``S(B) = S_min (1 + B_noise / B)`` and ``E(B) = E_min (1 + B / B_noise)``; the critical
batch size ``B_crit = E_min / S_min``. Both curves are linear in their parameters once
multiplied out, so they are fitted by least squares on relative errors (closed form).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np


def _fit_linear(features: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Least squares of ``y ~ features @ p`` with relative errors (each row divided by y)."""
    coef, *_ = np.linalg.lstsq(features / y[:, None], np.ones_like(y), rcond=None)
    return coef


def _log_r2(y: np.ndarray, fitted: np.ndarray) -> float:
    ly, lf = np.log(y), np.log(np.maximum(fitted, 1e-300))
    spread = np.sum((ly - ly.mean()) ** 2)
    return float(1 - np.sum((ly - lf) ** 2) / spread) if spread > 0 else float("nan")


def fit_tradeoff(batch_sizes: Sequence[float], steps: Sequence[float], examples: Sequence[float]) -> dict[str, Any]:
    """Fits ``S_min``, ``E_min`` (and each curve's ``B_noise``) to steps and examples to
    target at each batch size. Fit quality is R^2 of the logarithms and the RMS relative
    error. Needs 3 or more points.

    Example:
      >>> b = np.array([1, 4, 16, 64, 256, 1024.0])
      >>> f = fit_tradeoff(b, 100 * (1 + 50 / b), 5000 * (1 + b / 50))
      >>> round(f["s_min"]), round(f["e_min"]), round(f["b_crit"])
      (100, 5000, 50)
    """
    b, s, e = (np.asarray(v, float) for v in (batch_sizes, steps, examples))
    if len(b) < 3:
        raise ValueError(f"a trade-off fit needs at least 3 batch sizes that reached the target, got {len(b)}")
    s_min, s_slope = _fit_linear(np.stack([np.ones_like(b), 1 / b], 1), s)
    e_min, e_slope = _fit_linear(np.stack([np.ones_like(b), b], 1), e)
    s_fit, e_fit = s_min + s_slope / b, e_min + e_slope * b
    return {
        "s_min": float(s_min),
        "e_min": float(e_min),
        "b_noise_from_steps": float(s_slope / s_min),
        "b_noise_from_examples": float(e_min / e_slope) if e_slope else float("inf"),
        "b_crit": float(e_min / s_min),
        "steps_r2_log": _log_r2(s, s_fit),
        "examples_r2_log": _log_r2(e, e_fit),
        "steps_rms_rel_error": float(np.sqrt(np.mean((s_fit / s - 1) ** 2))),
        "examples_rms_rel_error": float(np.sqrt(np.mean((e_fit / e - 1) ** 2))),
        "physical": bool(s_min > 0 and e_min > 0 and s_slope > 0 and e_slope > 0),
        "points": len(b),
    }


def steps_curve(fit: dict[str, Any], b: np.ndarray) -> np.ndarray:
    """``S(B) = S_min (1 + B_crit / B)`` with the fitted ``S_min`` and ``B_crit``."""
    return fit["s_min"] * (1 + fit["b_crit"] / b)


def examples_curve(fit: dict[str, Any], b: np.ndarray) -> np.ndarray:
    """``E(B) = E_min (1 + B / B_crit)``."""
    return fit["e_min"] * (1 + b / fit["b_crit"])
