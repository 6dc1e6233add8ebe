"""The S(B) fit: it recovers known parameters, its bootstrap interval covers the truth about
as often as it claims, it says when the data do not bend, and random step counts do not
pass for a trade-off."""

import numpy as np
import pytest

from jbatch.analysis.tradeoff import bootstrap, fit_steps

B = np.array([1, 4, 16, 64, 256, 1024.0])


def _seed_steps(rng, s_min, b_noise, seeds=3, noise=0.1):
    """Steps to target per seed, log-normal scatter around the model (as real seeds scatter)."""
    return {b: list(s_min * (1 + b_noise / b) * np.exp(rng.normal(0, noise, seeds))) for b in B}


@pytest.mark.parametrize(("s_min", "b_noise"), [(120.0, 40.0), (15.0, 900.0), (10.0, 100.0)])
def test_fit_recovers_known_parameters_from_noisy_steps(s_min, b_noise):
    per = _seed_steps(np.random.default_rng(0), s_min, b_noise, noise=0.05)
    fit = fit_steps(B, [np.mean(v) for v in per.values()])
    assert fit["s_min"] == pytest.approx(s_min, rel=0.1)
    assert fit["b_crit"] == pytest.approx(b_noise, rel=0.15)
    assert fit["e_min"] == pytest.approx(s_min * b_noise, rel=0.2)
    assert fit["bound"] is None and fit["rms_rel_error"] < 0.06
    # the hyperbola explains the data far better than either one-parameter limit
    assert fit["rms_rel_error"] < fit["rms_rel_error_perfect_scaling"] / 3
    assert fit["rms_rel_error"] < fit["rms_rel_error_no_scaling"] / 3


def test_bootstrap_interval_covers_the_true_b_crit_about_as_often_as_it_claims():
    rng = np.random.default_rng(1)
    hits = 0
    for _ in range(40):
        ci = bootstrap(_seed_steps(rng, 20.0, 60.0), draws=300, seed=int(rng.integers(1 << 30)))
        hits += ci["low"] <= 60.0 <= ci["high"]
    assert 30 <= hits  # nominal 95%: 38 of 40; a percentile bootstrap on 6 points runs a little short


def test_interval_narrows_with_less_seed_noise():
    rng = np.random.default_rng(2)
    wide = bootstrap(_seed_steps(rng, 20.0, 60.0, noise=0.3))
    narrow = bootstrap(_seed_steps(rng, 20.0, 60.0, noise=0.03))
    assert narrow["high"] - narrow["low"] < (wide["high"] - wide["low"]) / 3


def test_data_that_do_not_bend_only_bound_b_crit():
    perfect = fit_steps(B, 5000 / B)  # steps fall as 1/B everywhere: B_crit above every B measured
    assert perfect["bound"] == "above" and perfect["b_crit"] > B.max()
    flat = fit_steps(B, np.full(B.size, 30.0))  # no gain from larger batches: B_crit below every B
    assert flat["bound"] == "below" and flat["b_crit"] < B.min()


def test_random_step_counts_are_not_a_trade_off():
    # With E = S x B, an examples fit would call these an excellent fit (E ~ B); the steps
    # fit must not: shuffled step counts have no 1/B structure to explain.
    rng = np.random.default_rng(3)
    worse = 0
    for _ in range(20):
        steps = rng.permutation(20 * (1 + 60 / B))
        fit = fit_steps(B, steps)
        worse += fit["r2_log"] < 0.5 or fit["bound"] is not None
    assert worse >= 18


def test_fit_needs_three_batch_sizes():
    with pytest.raises(ValueError, match="at least 3 batch sizes"):
        fit_steps([1, 2], [10, 6])
    with pytest.raises(ValueError, match="at least 3 batch sizes"):
        fit_steps([1, 1, 2], [10, 11, 6])
