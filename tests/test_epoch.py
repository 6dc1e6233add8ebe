"""Scan-fused epochs and vmap-ed replicas compute exactly what plain loops compute."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jbatch.config import TrainConfig
from jbatch.core.batching import epoch_batches, epoch_order
from jbatch.core.epoch import make_epoch, make_evaluate
from jbatch.core.loss import mean_squared_error, softmax_cross_entropy
from jbatch.core.optim import make_optimizer, set_learning_rate
from jbatch.core.replica import init_replicas, replica_orders, unstack
from jbatch.core.step import Batch, init_train_state, make_eval_step, make_train_step
from jbatch.sweeps.train import train_and_evaluate
from jbatch.workloads.data import make_linear_regression
from jbatch.workloads.model import make_model
from tests.helpers import assert_trees_close

STEP = make_train_step(softmax_cross_entropy)


def _state(seed=0, lr=0.05, optimizer="momentum", widths=(32,)):
    model = make_model("mlp", 64, 10, seed=seed, widths=widths)
    return init_train_state(model, make_optimizer(optimizer, lr))


@pytest.fixture(scope="module")
def small(digits):
    """The first 300 digits: 300 = 9 * 32 + 12, so B=32 has a partial last batch."""
    return jnp.asarray(digits.x_train[:300]), jnp.asarray(digits.y_train[:300])


def test_scan_epoch_equals_python_loop_of_steps(small):
    order = jnp.asarray(epoch_order(7, 0, 300))
    epoch = jax.jit(make_epoch(STEP, 300, 32))
    fused, metrics = epoch(_state(), small, order)

    step = jax.jit(STEP)
    idx, mask = epoch_batches(order, 32)
    state, losses = _state(), []
    x, y = small
    for i, m in zip(idx, mask, strict=True):
        real = np.asarray(i)[np.asarray(m)]  # the exact (unpadded) batch, smaller at the end
        state, mt = step(state, Batch(x[real], y[real]))
        losses.append(mt["loss"])
    assert int(fused.step) == int(state.step) == 10
    assert_trees_close(metrics["loss"], jnp.stack(losses))
    assert_trees_close(fused.params, state.params)
    assert_trees_close(fused.opt_state, state.opt_state)


def test_minibatch_with_b_equal_n_is_full_batch_descent(small):
    # jbatch's full-batch epoch takes the whole set in its stored order; mini-batch descent
    # with B = N shuffles first. Same update, different summation order.
    x, y = small
    full = jax.jit(make_epoch(STEP, 300, 300))
    shuffled_step = jax.jit(STEP)
    s_full, s_mini = _state(), _state()
    for e in range(3):
        perm = jnp.asarray(epoch_order(0, e, 300))
        s_full, _ = full(s_full, small, perm)
        s_mini, _ = shuffled_step(s_mini, Batch(x[perm], y[perm]))
    assert int(s_full.step) == 3
    assert_trees_close(s_full.params, s_mini.params, rtol=1e-5, atol=1e-6)


def test_vmap_over_4_seeds_and_2_learning_rates_equals_8_separate_runs(small):
    seeds, lrs = [0, 1, 2, 3] * 2, [0.02] * 4 + [0.1] * 4
    tx = make_optimizer("momentum", 0.05)
    stacked = init_replicas(lambda s: make_model("mlp", 64, 10, seed=s, widths=(32,)), tx, seeds, lrs)
    epoch = make_epoch(STEP, 300, 32)
    multi = jax.jit(jax.vmap(epoch, in_axes=(0, None, 0)))
    single = jax.jit(epoch)
    for e in range(2):
        stacked, m_multi = multi(stacked, small, jnp.asarray(replica_orders(seeds, e, 300)))
    for r, (seed, lr) in enumerate(zip(seeds, lrs, strict=True)):
        alone = init_train_state(make_model("mlp", 64, 10, seed=seed, widths=(32,)), tx)
        alone = alone.replace(opt_state=set_learning_rate(alone.opt_state, lr))  # same tx: no recompile
        for e in range(2):
            alone, m_alone = single(alone, small, jnp.asarray(epoch_order(seed, e, 300)))
        assert_trees_close(unstack(stacked.params, r), alone.params)
        assert_trees_close(m_multi["loss"][r], m_alone["loss"])
    # and the replicas really differ (seed and learning rate both matter)
    assert not np.allclose(m_multi["loss"][0], m_multi["loss"][1])
    assert not np.allclose(m_multi["loss"][0], m_multi["loss"][4])


def test_full_batch_descent_reaches_least_squares_optimum():
    ds = make_linear_regression()
    result = train_and_evaluate(
        TrainConfig.of(
            dataset="linreg",
            model="linear",
            batch_size="full",
            epochs=300,
            learning_rate=0.1,
            optimizer="sgd",
        ),
        dataset=ds,
    )
    params = result.state.params["out"]
    np.testing.assert_allclose(np.asarray(params["kernel"]), ds.optimum["w"], atol=1e-4)
    np.testing.assert_allclose(np.asarray(params["bias"]), ds.optimum["b"], atol=1e-4)
    assert all(e.iterations == 1 for e in result.epochs)


def test_stochastic_descent_does_not_reach_it_exactly():
    # Contrast for the test above (claim C4): at a constant learning rate B=1 keeps wandering.
    ds = make_linear_regression()
    result = train_and_evaluate(
        TrainConfig.of(dataset="linreg", model="linear", batch_size=1, epochs=5, learning_rate=0.05),
        dataset=ds,
    )
    w = np.asarray(result.state.params["out"]["kernel"])
    err = np.abs(w - ds.optimum["w"]).max()
    assert 1e-4 < err < 0.1
    assert result.epochs[-1].iterations == ds.num_train


def test_evaluate_is_exact_for_any_eval_batch_size(small):
    state = _state()
    sums = jax.jit(make_eval_step(softmax_cross_entropy, True))(state, Batch(*small))
    for b in (7, 300, 4096):
        got = jax.jit(make_evaluate(make_eval_step(softmax_cross_entropy, True), b))(state, small)
        np.testing.assert_allclose(got["loss"], sums["loss_sum"] / 300, rtol=1e-5)
        np.testing.assert_allclose(got["accuracy"], sums["correct"] / 300, rtol=1e-6)


def test_regression_evaluation_has_no_accuracy():
    ds = make_linear_regression(num_train=40, num_test=10, features=3)
    state = init_train_state(make_model("linear", 3, 1), make_optimizer("sgd", 0.1))
    got = jax.jit(make_evaluate(make_eval_step(mean_squared_error, False), 16))(
        state, (jnp.asarray(ds.x_train), jnp.asarray(ds.y_train))
    )
    assert set(got) == {"loss"}
    pred = state.model()(jnp.asarray(ds.x_train))
    np.testing.assert_allclose(got["loss"], np.mean((np.asarray(pred) - ds.y_train) ** 2), rtol=1e-5)


def test_default_digits_run_learns(digits):
    result = train_and_evaluate(TrainConfig.of(epochs=10), dataset=digits)
    assert result.epochs[-1].test_accuracy > 0.95
    assert result.epochs[-1].train_loss < result.epochs[0].train_loss
    assert [e.iterations for e in result.epochs] == [45] * 10  # ceil(1437 / 32)
