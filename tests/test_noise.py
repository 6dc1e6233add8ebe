"""The gradient noise scale on linear regression, where per-example gradients, G and
Sigma have closed forms: g_i = 2 r_i [x_i, 1] with residual r_i = x_i.w + b - y_i."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jbatch.core.loss import mean_squared_error
from jbatch.core.optim import make_optimizer
from jbatch.core.step import init_train_state
from jbatch.sweeps.noise import gradient_moments
from jbatch.workloads.data import make_linear_regression
from jbatch.workloads.model import make_model


@pytest.fixture(scope="module")
def problem():
    ds = make_linear_regression(num_train=300, features=5, noise=0.5)
    state = init_train_state(make_model("linear", 5, 1, seed=3), make_optimizer("sgd", 0.1))
    w = np.asarray(state.params["out"]["kernel"], np.float64)
    b = np.asarray(state.params["out"]["bias"], np.float64)
    x = ds.x_train.astype(np.float64)
    r = (x @ w + b - ds.y_train)[:, 0]
    g = 2 * r[:, None] * np.hstack([x, np.ones((len(x), 1))])  # per-example gradients [N, 6]
    return ds, state, g


def test_per_example_moments_match_the_closed_form(problem):
    ds, state, g = problem
    G = g.mean(0)
    trace = np.trace(np.cov(g.T, ddof=1))
    got = jax.jit(
        lambda s: gradient_moments(s, (jnp.asarray(ds.x_train), jnp.asarray(ds.y_train)), mean_squared_error)
    )(state)
    np.testing.assert_allclose(got["grad_sq"], G @ G, rtol=1e-4)
    np.testing.assert_allclose(got["trace_sigma"], trace, rtol=1e-4)
    np.testing.assert_allclose(got["b_simple"], trace / (G @ G), rtol=2e-4)


@pytest.mark.parametrize("group", [1, 7, 20])  # 300 = 42 x 7 + 6: rows left out of the groups still count in G
def test_the_full_gradient_comes_from_the_group_pass_exactly(problem, group):
    ds, state, g = problem
    G = g.mean(0)
    got = jax.jit(
        lambda s: gradient_moments(
            s, (jnp.asarray(ds.x_train), jnp.asarray(ds.y_train)), mean_squared_error, group=group
        )
    )(state)
    np.testing.assert_allclose(got["grad_sq"], G @ G, rtol=1e-5)


def test_the_unroll_changes_the_program_not_the_moments(problem):
    """Tests probe with ``unroll=1`` (a smaller program); sweeps with the default: same moments."""
    ds, state, _ = problem
    data = (jnp.asarray(ds.x_train), jnp.asarray(ds.y_train))
    one, many = (
        jax.jit(lambda s, u=u: gradient_moments(s, data, mean_squared_error, group=7, unroll=u))(state) for u in (1, 8)
    )
    for key in ("grad_sq", "trace_sigma", "b_simple"):
        np.testing.assert_allclose(one[key], many[key], rtol=1e-5)


@pytest.mark.parametrize("group", [6, 20])  # 300 examples: 50 groups of 6, 15 groups of 20
def test_group_moments_are_unbiased_over_random_partitions(problem, group):
    ds, state, g = problem
    G, trace = g.mean(0), np.trace(np.cov(g.T, ddof=1))
    x, y = jnp.asarray(ds.x_train), jnp.asarray(ds.y_train)
    moments = jax.jit(lambda s, order: gradient_moments(s, (x[order], y[order]), mean_squared_error, group=group))
    rng = np.random.default_rng(0)
    draws = [jax.device_get(moments(state, jnp.asarray(rng.permutation(len(g))))) for _ in range(300)]
    v = np.array([d["trace_sigma"] for d in draws])
    sem = v.std() / np.sqrt(len(v))
    assert abs(v.mean() - trace) < 4 * sem, (v.mean(), trace, sem)  # 4 standard errors
    assert 0 < sem < 0.03 * trace  # a real sample, and sharp enough to notice a bias of 12%
    # every example is in some group: the mean gradient is the whole set's, exactly
    np.testing.assert_allclose([d["grad_sq"] for d in draws], G @ G, rtol=1e-4)


def test_a_subsample_subtracts_the_bias_of_its_mean_gradient(problem):
    ds, state, g = problem
    G = g.mean(0)
    rng = np.random.default_rng(1)
    x, y = jnp.asarray(ds.x_train), jnp.asarray(ds.y_train)
    sub = jax.jit(lambda s, rows: gradient_moments(s, (x[rows], y[rows]), mean_squared_error, population=False))
    naive = jax.jit(lambda s, rows: gradient_moments(s, (x[rows], y[rows]), mean_squared_error))
    rows = [jnp.asarray(rng.choice(len(g), 30, replace=False)) for _ in range(400)]
    unbiased = np.mean([float(sub(state, r)["grad_sq"]) for r in rows])
    biased = np.mean([float(naive(state, r)["grad_sq"]) for r in rows])
    trace = np.trace(np.cov(g.T, ddof=1))
    assert abs(unbiased - G @ G) < abs(biased - G @ G) / 3  # the naive mean overshoots by about tr/30
    assert biased - G @ G == pytest.approx(trace / 30, rel=0.3)
