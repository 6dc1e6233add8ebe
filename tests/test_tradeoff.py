"""The S(B) / E(B) fit recovers known parameters from noisy synthetic points."""

import numpy as np
import pytest

from jbatch.tradeoff import examples_curve, fit_tradeoff, steps_curve


@pytest.mark.parametrize(("s_min", "b_noise"), [(120.0, 40.0), (15.0, 900.0)])
def test_fit_recovers_known_parameters_from_noisy_points(s_min, b_noise):
    rng = np.random.default_rng(0)
    b = np.array([1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048.0])
    e_min = s_min * b_noise
    steps = s_min * (1 + b_noise / b) * np.exp(rng.normal(0, 0.05, b.size))  # 5% noise
    examples = e_min * (1 + b / b_noise) * np.exp(rng.normal(0, 0.05, b.size))
    fit = fit_tradeoff(b, steps, examples)
    assert fit["s_min"] == pytest.approx(s_min, rel=0.1)
    assert fit["e_min"] == pytest.approx(e_min, rel=0.1)
    assert fit["b_crit"] == pytest.approx(b_noise, rel=0.15)
    assert fit["b_noise_from_steps"] == pytest.approx(b_noise, rel=0.15)
    assert fit["physical"] and fit["steps_r2_log"] > 0.98
    np.testing.assert_allclose(steps_curve(fit, b), fit["s_min"] * (1 + fit["b_crit"] / b))
    # the fitted pair sits on the hyperbola (S/S_min - 1)(E/E_min - 1) = 1
    s_hat, e_hat = steps_curve(fit, b), examples_curve(fit, b)
    np.testing.assert_allclose((s_hat / fit["s_min"] - 1) * (e_hat / fit["e_min"] - 1), 1.0)


def test_fit_reports_a_poor_fit_as_such():
    b = np.array([1, 8, 64, 512.0])
    steps = np.array([100, 400, 50, 900.0])  # no trade-off at all
    fit = fit_tradeoff(b, steps, steps * b)
    assert fit["steps_r2_log"] < 0.5 or not fit["physical"]


def test_fit_needs_three_points():
    with pytest.raises(ValueError, match="at least 3 batch sizes"):
        fit_tradeoff([1, 2], [10, 6], [10, 12])
