"""The language with a known floor and the transformer: the exact entropy against a
Monte-Carlo estimate, a causal model, exact masked losses over tokens, and a trained model
that approaches the floor without beating it."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from jbatch.core.loss import softmax_cross_entropy
from jbatch.core.step import Batch, init_train_state, make_train_step
from jbatch.workloads.language import make_chain, make_language
from jbatch.workloads.transformer import make_transformer


def test_entropy_rate_matches_a_monte_carlo_estimate():
    lang = make_chain(vocab=12, order=2, branching=4, seed=3)
    lp = lang.log_prob(lang.sample(120_000, np.random.default_rng(0)))
    estimate, se = -lp.mean(), lp.std() / np.sqrt(len(lp))
    assert abs(estimate - lang.entropy_rate()) < 4 * se  # 4 standard errors
    assert se < 0.01 * lang.entropy_rate()  # sharp enough to notice a 4% error
    assert 0 < lang.entropy_rate() < np.log(4)  # below uniform over the 4 allowed tokens (Zipf weights)


def test_the_floor_of_a_sequence_counts_its_cut_context():
    lang = make_chain(vocab=12, order=2, branching=4, seed=3)
    rate = lang.entropy_rate()
    assert lang.floor(2) > lang.floor(64) > rate  # the first token is predicted from a shorter context
    assert lang.floor(64) == pytest.approx(rate + (lang.floor(2) * 2 - 2 * rate) / 64)


@pytest.fixture(scope="module")
def model():
    return make_transformer(vocab=16, context=12, width=32, depth=2, heads=4)(0)


def test_a_tokens_output_does_not_depend_on_later_tokens(model):
    x = jnp.asarray(np.random.default_rng(0).integers(0, 16, (3, 12)))
    later = x.at[:, 7:].set((x[:, 7:] + 5) % 16)
    a, b = model(x), model(later)
    np.testing.assert_array_equal(np.asarray(a[:, :7]), np.asarray(b[:, :7]))
    assert float(jnp.abs(a[:, 7:] - b[:, 7:]).max()) > 1e-3  # and later outputs do change


@pytest.mark.slow
def test_the_masked_token_loss_equals_the_unpadded_one(model):
    from jbatch.core.step import init_train_state as init

    rng = np.random.default_rng(1)
    x, y = (jnp.asarray(rng.integers(0, 16, (6, 12))) for _ in range(2))
    # plain SGD: Adam's first step is lr * sign(g) and would turn the float noise of a zero
    # gradient (the attention key bias cannot change a softmax) into a full-size update
    state = init(model, optax.sgd(1.0))
    step = jax.jit(make_train_step(softmax_cross_entropy))
    with jax.numpy_dtype_promotion("standard"):
        padded, m_pad = step(state, Batch(x, y, jnp.arange(6) < 4))
        exact, m_exact = step(state, Batch(x[:4], y[:4]))
    np.testing.assert_allclose(m_pad["loss"], m_exact["loss"], rtol=1e-6)
    assert float(m_pad["examples"]) == 4 * 12  # a mean per token
    moved = 0.0
    for a, b, c in zip(*(jax.tree.leaves(s.params) for s in (padded, exact, state)), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
        moved = max(moved, float(jnp.abs(b - c).max()))
    assert moved > 0.05  # the step did move the weights, far beyond the tolerance


@pytest.mark.slow
def test_a_trained_transformer_approaches_the_floor_and_does_not_beat_it():
    ds = make_language(train_sequences=2048, test_sequences=256, length=12, vocab=8, order=1, branching=3, seed=2)
    floor = ds.info["floor"]
    model = make_transformer(vocab=8, context=12, width=32, depth=1, heads=2)(0)
    state = init_train_state(model, optax.adam(3e-3))
    step = jax.jit(make_train_step(softmax_cross_entropy))
    x, y = jnp.asarray(ds.x_train), jnp.asarray(ds.y_train)
    rng = np.random.default_rng(0)
    with jax.numpy_dtype_promotion("standard"):
        for _ in range(400):
            rows = jnp.asarray(rng.integers(0, len(x), 64))
            state, _ = step(state, Batch(x[rows], y[rows]))
    logits = state.model()(jnp.asarray(ds.x_test))
    per_token = np.asarray(optax.softmax_cross_entropy_with_integer_labels(logits, jnp.asarray(ds.y_test)))
    loss, se = per_token.mean(), per_token.std() / np.sqrt(per_token.size)
    assert loss > floor - 4 * se  # it cannot beat the language, beyond sampling noise
    assert loss < floor + 0.1  # and it learned most of it (uniform would be log 8 = 2.08)


@pytest.mark.slow
def test_a_language_sweep_counts_examples_not_tokens(tmp_path):
    """The compiled program counts loss terms (tokens); examples per epoch and to target are
    sequences: N per epoch, and steps x B to target (the report once gave tokens there)."""
    from jbatch.analysis.selection import counted_examples, replica_summary
    from jbatch.config import SweepConfig
    from jbatch.workloads.workload import for_config, with_floor
    from tests.helpers import sweep

    ds = make_language(train_sequences=64, test_sequences=32, length=8, vocab=8, order=1, branching=2, seed=1)
    cfg = SweepConfig.of(
        name="lm",
        dataset="tiny-lm",
        model="transformer",
        optimizer="adam",
        batch_sizes=(16,),
        learning_rates=(0.01,),
        seeds=(0,),
        target_metric="test_loss",
        target_over_floor=0.8,
        budget_steps=24,
        budget_epochs=1,
        evals=24,
        noise_checkpoints=0,
        extend_grid=0,
    )
    cfg = with_floor(cfg, for_config(cfg, ds))
    with jax.numpy_dtype_promotion("standard"):  # optax's Adam raises an injected float b1 to an int count
        _, doc = sweep(cfg, tmp_path, ds)
    result = doc.result(16)
    assert result.tokens_per_example == 8
    assert counted_examples(result) == [64] * 6  # 24 steps: six epochs of 4 batches
    s = replica_summary(result.replicas[0], result, "test_loss", cfg.target.value)
    assert s["steps_to_target"] is not None and s["steps_to_target"] > 4  # reached after the first epoch
    assert s["examples_to_target"] == 16 * s["steps_to_target"]
    assert s["tokens_to_target"] == 8 * s["examples_to_target"]
