"""The pure training step: masked means are exact, gradients are means of per-example
gradients, the learning rate is state, and any NNX model / optax transformation works."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx

from jbatch.core.loss import mean_squared_error, softmax_cross_entropy, summed
from jbatch.core.optim import get_learning_rate, make_optimizer, set_learning_rate
from jbatch.core.step import Batch, init_train_state, make_eval_step, make_train_step
from jbatch.workloads.model import make_model
from tests.helpers import assert_trees_close


def _problem(n=20, d=64, seed=0):
    rng = np.random.default_rng(seed)
    x = jnp.asarray(rng.standard_normal((n, d)), jnp.float32)
    y = jnp.asarray(rng.integers(0, 10, n), jnp.int32)
    return x, y


@pytest.mark.parametrize("optimizer", ["sgd", "momentum", "adam"])
def test_padded_masked_batch_equals_exact_partial_batch(optimizer):
    x, y = _problem()
    real = 13  # a partial batch of 13 real rows, padded to 20 with garbage rows
    state = init_train_state(make_model("mlp", 64, 10, widths=(32,)), make_optimizer(optimizer, 0.1))
    step = jax.jit(make_train_step(softmax_cross_entropy))
    mask = jnp.arange(20) < real
    garbage = x.at[real:].set(100.0)
    # optax's adam computes b1 ** count (float32 ** int32): not strict-promotion clean.
    with jax.numpy_dtype_promotion("standard" if optimizer == "adam" else "strict"):
        padded, m_pad = step(state, Batch(garbage, y, mask))
        exact, m_exact = step(state, Batch(x[:real], y[:real]))
    assert_trees_close(m_pad["loss"], m_exact["loss"])
    assert_trees_close(padded.params, exact.params)
    assert_trees_close(padded.opt_state, exact.opt_state)


def test_masked_gradient_equals_exact_gradient():
    x, y = _problem()
    model = make_model("mlp", 64, 10, widths=(32,))
    graphdef, params = nnx.split(model, nnx.Param)

    def loss(p, xb, yb, mask=None):
        return summed(softmax_cross_entropy)(nnx.merge(graphdef, p)(xb), yb, mask).mean()

    grad = jax.jit(jax.grad(loss))
    g_pad = grad(params, x, y, jnp.arange(20) < 7)
    g_exact = grad(params, x[:7], y[:7])
    assert_trees_close(g_pad, g_exact)


def test_batch_gradient_is_mean_of_per_example_gradients():
    x, y = _problem()
    model = make_model("mlp", 64, 10, widths=(32,))
    graphdef, params = nnx.split(model, nnx.Param)

    def loss(p, xb, yb):
        return softmax_cross_entropy(nnx.merge(graphdef, p)(xb), yb).mean()

    per_example = jax.jit(jax.vmap(jax.grad(loss), in_axes=(None, 0, 0)))(params, x[:, None], y[:, None])
    mean_of_grads = jax.tree.map(lambda g: g.mean(0), per_example)
    assert_trees_close(mean_of_grads, jax.jit(jax.grad(loss))(params, x, y))


def test_learning_rate_is_state_and_scales_the_sgd_update():
    x, y = _problem()
    state = init_train_state(make_model("linear", 64, 10), make_optimizer("sgd", 0.1))
    step = jax.jit(make_train_step(softmax_cross_entropy))
    small, _ = step(state, Batch(x, y))
    big_state = state.replace(opt_state=set_learning_rate(state.opt_state, 0.3))
    assert float(get_learning_rate(big_state.opt_state)) == pytest.approx(0.3)
    big, _ = step(big_state, Batch(x, y))
    d_small = jax.tree.map(jnp.subtract, small.params, state.params)
    d_big = jax.tree.map(jnp.subtract, big.params, state.params)
    assert_trees_close(jax.tree.map(lambda d: 3 * d, d_small), d_big, rtol=1e-4)
    assert float(jnp.abs(d_small["out"]["kernel"]).max()) > 0


def test_set_learning_rate_needs_injected_hyperparams():
    from jbatch.errors import ConfigError

    state = init_train_state(make_model("linear", 3, 2), optax.sgd(0.1))
    with pytest.raises(ConfigError, match="inject_hyperparams"):
        set_learning_rate(state.opt_state, 0.2)


class _UserNet(nnx.Module):
    """A model jbatch does not ship: BatchNorm gives it non-parameter state."""

    def __init__(self, rngs):
        self.a = nnx.Linear(4, 8, rngs=rngs)
        self.bn = nnx.BatchNorm(8, rngs=rngs)
        self.b = nnx.Linear(8, 1, rngs=rngs)

    def __call__(self, x):
        return self.b(jax.nn.gelu(self.bn(self.a(x))))


def test_any_nnx_model_and_optax_chain():
    rng = np.random.default_rng(0)
    x = jnp.asarray(rng.standard_normal((64, 4)), jnp.float32)
    y = jnp.sum(x, axis=1, keepdims=True)
    tx = optax.chain(optax.clip_by_global_norm(1.0), optax.adamw(1e-2))
    state = init_train_state(_UserNet(nnx.Rngs(0)), tx)
    step = jax.jit(make_train_step(mean_squared_error))
    losses = []
    with jax.numpy_dtype_promotion("standard"):  # optax's adamw: b1 ** count, see above
        for _ in range(200):
            state, m = step(state, Batch(x, y))
            losses.append(float(m["loss"]))
    assert losses[-1] < 0.05 * losses[0]
    # BatchNorm's running statistics live in `rest` and are carried by the step.
    assert float(jnp.abs(state.rest["bn"]["mean"]).sum()) > 0
    assert int(state.step) == 200


def test_eval_step_sums_are_exact_under_a_mask():
    x, y = _problem()
    state = init_train_state(make_model("mlp", 64, 10, widths=(16,)), make_optimizer("sgd", 0.1))
    ev = jax.jit(make_eval_step(softmax_cross_entropy, classification=True))
    masked = ev(state, Batch(x, y, jnp.arange(20) < 11))
    exact = ev(state, Batch(x[:11], y[:11]))
    assert float(masked["count"]) == 11.0
    assert_trees_close(masked, exact)
    logits = state.model()(x[:11])
    assert float(exact["correct"]) == float(jnp.sum(jnp.argmax(logits, -1) == y[:11]))


def test_a_loss_is_any_per_example_function_as_optax_writes_them():
    x, y = _problem()
    state = init_train_state(make_model("mlp", 64, 10, widths=(16,)), make_optimizer("sgd", 0.1))
    mask = jnp.arange(20) < 13
    ours, m_ours = make_train_step(softmax_cross_entropy)(state, Batch(x, y, mask))
    theirs, m_theirs = make_train_step(optax.softmax_cross_entropy_with_integer_labels)(state, Batch(x, y, mask))
    assert_trees_close(m_ours, m_theirs)
    assert_trees_close(ours.params, theirs.params)
    assert float(m_theirs["examples"]) == 13.0  # jbatch applied the mask and counted the real rows

    def l2(outputs, targets):  # optax.l2_loss of a scalar output per row: [B]
        return optax.l2_loss(outputs[:, 0], targets)

    reg = init_train_state(make_model("linear", 64, 1), make_optimizer("sgd", 0.01))
    target = x[:, 0]
    _, m = make_train_step(l2)(reg, Batch(x, target))
    out = reg.model()(x)[:, 0]
    np.testing.assert_allclose(float(m["loss"]), float(jnp.mean(0.5 * (out - target) ** 2)), rtol=1e-5)


def test_mean_squared_error_refuses_outputs_and_targets_of_different_shapes():
    predictions, targets = jnp.array([[1.0], [2.0], [3.0]]), jnp.array([1.0, 2.0, 4.0])
    with pytest.raises(ValueError, match=r"predictions of shape \(3, 1\) and targets of shape \(3,\) differ"):
        mean_squared_error(predictions, targets)  # broadcast, it would sum a 3 x 3 error: 21, not 1
    assert float(summed(mean_squared_error)(predictions, targets[:, None]).total) == 1.0


def test_a_loss_that_takes_the_mean_itself_is_refused_with_its_shapes():
    x, y = _problem()
    state = init_train_state(make_model("linear", 64, 10), make_optimizer("sgd", 0.1))

    def mean_loss(logits, labels):  # a scalar: jbatch could not mask or count it
        return optax.softmax_cross_entropy_with_integer_labels(logits, labels).mean()

    with pytest.raises(ValueError, match=r"returned shape \(\) for outputs of shape \(20, 10\): it must give one term"):
        make_train_step(mean_loss)(state, Batch(x, y))


def test_a_loss_of_jbatch_0_1_taking_the_mask_still_works_with_a_deprecation_warning():
    x, y = _problem()
    state = init_train_state(make_model("linear", 64, 10), make_optimizer("sgd", 0.1))

    def old(logits, labels, mask=None):  # 0.1's signature: (outputs, targets, mask) -> LossSum
        return summed(softmax_cross_entropy)(logits, labels, mask)

    with pytest.warns(DeprecationWarning, match="takes a mask and returns a LossSum"):
        step = make_train_step(old)
    mask = jnp.arange(20) < 9
    _, m_old = step(state, Batch(x, y, mask))
    _, m_new = make_train_step(softmax_cross_entropy)(state, Batch(x, y, mask))
    assert_trees_close(m_old, m_new)
