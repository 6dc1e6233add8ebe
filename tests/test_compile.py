"""Claim C11 in practice: a fixed batch shape is one program. A second epoch, a padded
partial last batch and a new learning rate compile nothing new (counted, never timed)."""

import jax
import jax.numpy as jnp

from jbatch.config import TrainConfig
from jbatch.core.batching import epoch_order
from jbatch.core.engine import CompileCounter, compile_program
from jbatch.core.epoch import make_epoch
from jbatch.core.loss import softmax_cross_entropy
from jbatch.core.optim import make_optimizer, set_learning_rate
from jbatch.core.step import init_train_state, make_train_step
from jbatch.sweeps.train import train_and_evaluate
from jbatch.workloads.model import make_model


def test_counter_sees_a_compilation_and_a_cache_hit():
    f = jax.jit(lambda v: v * 2)
    five, six = jnp.ones(5), jnp.ones(6)  # made outside: creating them compiles too
    with CompileCounter() as c:
        f(five)
        f(five)
    assert c.count == 1
    with CompileCounter() as c:
        f(six)  # a new shape is a new program
    assert c.count == 1


def test_steady_state_epochs_compile_nothing(digits):
    n = digits.num_train  # 1437 = 44 * 32 + 29: every epoch ends with a padded batch
    data = (jnp.asarray(digits.x_train), jnp.asarray(digits.y_train))
    state = init_train_state(make_model("mlp", 64, 10, widths=(32,)), make_optimizer("sgd", 0.1))
    epoch = compile_program(
        make_epoch(make_train_step(softmax_cross_entropy), n, 32), state, data, epoch_order(0, 0, n)
    )
    order = lambda e: jax.device_put(epoch_order(1, e, n))  # noqa: E731
    state, _ = epoch(state, data, order(0))  # first epoch, first calls of everything
    new_lr = set_learning_rate(state.opt_state, 0.5)
    with CompileCounter() as c:
        state, m1 = epoch(state, data, order(1))  # second epoch
        state = state.replace(opt_state=set_learning_rate(state.opt_state, 0.01))  # new learning rate
        state, m2 = epoch(state, data, order(2))
        state = state.replace(opt_state=new_lr)
        state, m3 = epoch(state, data, order(3))
        jax.block_until_ready(m3)
    assert c.count == 0
    assert int(state.step) == 4 * 45


def test_plain_jit_of_the_step_does_not_recompile_for_a_new_learning_rate(digits):
    from jbatch.core.step import Batch

    state = init_train_state(make_model("linear", 64, 10), make_optimizer("adam", 0.1))
    step = jax.jit(make_train_step(softmax_cross_entropy))
    batch = Batch(jnp.asarray(digits.x_train[:32]), jnp.asarray(digits.y_train[:32]))
    with jax.numpy_dtype_promotion("standard"):  # optax's adam: b1 ** count (see test_step)
        state, _ = step(state, batch)
        with CompileCounter() as c:
            for lr in (0.3, 0.01, 1e-4):
                state = state.replace(opt_state=set_learning_rate(state.opt_state, lr))
                state, _ = step(state, batch)
    assert c.count == 0


def test_compilations_do_not_grow_with_epochs(digits):
    def run(epochs):
        return train_and_evaluate(
            TrainConfig.of(epochs=epochs, widths=(32,), batch_size=100),
            dataset=digits,
        )

    run(1)  # the eager operations of building a model and its optimizer compile once per process
    counts = []
    for epochs in (1, 4):
        with CompileCounter() as c:
            run(epochs)
        counts.append(c.count)
    assert counts[0] == counts[1]
    assert counts[0] >= 2  # at least the epoch and the evaluation programs
