"""Batch-size schedules (``jbatch.core.phases``): a run through phases of different batch sizes
equals running the phases by hand, step by step, with a model as users write them (BatchNorm,
Dropout) and a momentum that carries across; one program per batch size; the stated
learning-rate rules; bad schedules as one clear line."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx

from jbatch.core.batching import epoch_order
from jbatch.core.engine import Programs
from jbatch.core.loss import softmax_cross_entropy
from jbatch.core.optim import get_learning_rate, set_learning_rate
from jbatch.core.phases import Phase, examples_seen, parse_phases, phase_learning_rates, train_phases
from jbatch.core.step import Batch, init_train_state, make_train_step
from jbatch.errors import ConfigError
from tests.helpers import assert_trees_close


class Net(nnx.Module):  # a user's model: batch statistics and an RNG stream
    def __init__(self, rngs: nnx.Rngs):
        self.hidden = nnx.Linear(64, 32, rngs=rngs)
        self.norm = nnx.BatchNorm(32, rngs=rngs)
        self.drop = nnx.Dropout(0.2, rngs=rngs)
        self.out = nnx.Linear(32, 10, rngs=rngs)

    def __call__(self, x):
        return self.out(self.drop(jax.nn.relu(self.norm(self.hidden(x)))))


def fresh():
    # momentum, not Adam: Adam divides the float noise of a zero gradient (the pixels that are 0 in every digit, the
    # bias before BatchNorm) by its own size, so rounding would grow into weight differences
    return init_train_state(Net(nnx.Rngs(0)), optax.inject_hyperparams(optax.sgd)(learning_rate=0.03, momentum=0.9))


PHASES = (Phase(32, 13), Phase(64, 7), Phase(300, 2))  # 300 rows: 10 batches of 32 an epoch (the last 12), 5 of 64


def by_hand(state, x, y, phases, lrs, seed):
    """The plain way: the jitted step on each Keras batch (the partial last one as it is),
    a new epoch order for each epoch, the learning rate set at each phase."""
    step = jax.jit(make_train_step(softmax_cross_entropy))
    n, epoch, losses = len(x), 0, []
    for p, lr in zip(phases, lrs, strict=True):
        state = state.replace(opt_state=set_learning_rate(state.opt_state, jnp.asarray(lr, jnp.float32)))
        left = p.steps
        while left:
            order = epoch_order(seed, epoch, n)
            batches = [order[i : i + p.batch_size] for i in range(0, n, p.batch_size)]
            for rows in batches[: min(left, len(batches))]:
                state, m = step(state, Batch(x[rows], y[rows]))
                losses.append(float(m["loss"]))
            left -= min(left, len(batches))
            epoch += 1
    return state, losses


@pytest.mark.slow
def test_phases_equal_running_them_by_hand(tiny):
    x, y = jnp.asarray(tiny.x_train), jnp.asarray(tiny.y_train)
    with jax.numpy_dtype_promotion("standard"):
        state, records = train_phases(
            fresh(), make_train_step(softmax_cross_entropy), (x, y), PHASES, rule="sqrt", seed=3
        )
        lrs = [r.learning_rate for r in records]
        want, losses = by_hand(fresh(), x, y, PHASES, lrs, seed=3)
    assert lrs == pytest.approx([0.03, 0.03 * 2**0.5, 0.03 * (300 / 32) ** 0.5])
    assert [r.epochs for r in records] == [[0, 1], [2, 3], [4, 5]]  # truncated epochs end their phase
    assert [r.first_step for r in records] == [0, 13, 20] and int(state.step) == 22
    # float rounding apart (a padded, masked partial batch sums in another order than the cut one)
    np.testing.assert_allclose(np.concatenate([r.loss for r in records]), losses, rtol=1e-4, atol=1e-5)
    assert_trees_close(state.params, want.params, rtol=1e-4, atol=1e-5)

    def keys(rest):  # RNG keys as their data
        is_key = lambda v: jnp.issubdtype(v.dtype, jax.dtypes.prng_key)  # noqa: E731
        return jax.tree.map(lambda v: jax.random.key_data(v) if is_key(v) else v, rest)

    assert_trees_close(keys(state.rest), keys(want.rest), rtol=1e-4, atol=1e-5)  # BatchNorm averages, Dropout's RNG
    assert_trees_close(state.opt_state, want.opt_state, rtol=1e-4, atol=1e-5)  # the momentum carried across
    assert float(get_learning_rate(state.opt_state)) == pytest.approx(lrs[-1])


def test_one_program_per_batch_size_whatever_the_phase_length(tiny):
    x, y = jnp.asarray(tiny.x_train), jnp.asarray(tiny.y_train)
    programs = Programs()
    phases = (Phase(32, 3), Phase(64, 5), Phase(32, 25), Phase(64, 1))  # whole and cut epochs at each size
    step = make_train_step(softmax_cross_entropy)
    with jax.numpy_dtype_promotion("standard"):
        state, records = train_phases(
            fresh(), step, (x, y), phases, learning_rates=[0.03, 0.06, 0.03, 0.01], programs=programs
        )
    assert [key for key, _ in programs.log] == [
        ("partial-epoch", step, 32, "keep"),
        ("partial-epoch", step, 64, "keep"),
    ]
    assert programs.hits == 2  # the second phase at each size: its program was there
    assert [len(r.loss) for r in records] == [3, 5, 25, 1]
    assert np.isfinite(np.concatenate([r.loss for r in records])).all()
    assert int(state.step) == 34
    assert examples_seen(phases, 300) == 3 * 32 + 300 + (2 * 300 + 5 * 32) + 64  # 5 batches of 64: one epoch


def test_programs_are_kept_by_their_step_so_a_shared_cache_never_runs_another_loss(tiny):
    """A cache reused with another step (another loss, or micro-batches) builds that step's
    program: the run is the one a fresh cache gives, not the first step's."""
    x, y = jnp.asarray(tiny.x_train), jnp.asarray(tiny.y_train)

    def squared(logits, labels):  # another loss on the same shapes
        return jnp.sum(jnp.square(jax.nn.softmax(logits) - jax.nn.one_hot(labels, 10)), -1)

    shared = Programs()
    with jax.numpy_dtype_promotion("standard"):
        train_phases(fresh(), make_train_step(softmax_cross_entropy), (x, y), PHASES[:1], programs=shared)
        reused, _ = train_phases(fresh(), make_train_step(squared), (x, y), PHASES[:1], programs=shared)
        alone, _ = train_phases(fresh(), make_train_step(squared), (x, y), PHASES[:1])
        other, _ = train_phases(fresh(), make_train_step(softmax_cross_entropy), (x, y), PHASES[:1])
    assert_trees_close(reused.params, alone.params)
    assert not np.allclose(np.asarray(reused.params["out"]["kernel"]), np.asarray(other.params["out"]["kernel"]))
    assert len(shared.log) == 2 and shared.hits == 0


def test_a_callback_between_steps_changes_nothing_and_can_stop_the_run(tiny):
    """Evaluating every 50 examples cuts epochs into pieces: the run must be the same run (the
    rest of a cut epoch follows in its order), the callback sees the true step and example
    counts, and returning True ends the run there."""
    x, y = jnp.asarray(tiny.x_train), jnp.asarray(tiny.y_train)
    step = make_train_step(softmax_cross_entropy)
    seen = []

    def callback(state, at, examples):
        seen.append((at, examples, int(state.step)))
        return False

    with jax.numpy_dtype_promotion("standard"):
        whole, _ = train_phases(fresh(), step, (x, y), PHASES, rule="sqrt", seed=3)
        cut, records = train_phases(
            fresh(), step, (x, y), PHASES, rule="sqrt", seed=3, every_examples=50, callback=callback
        )
    assert_trees_close(cut.params, whole.params, rtol=1e-5, atol=1e-6)
    assert [r.epochs for r in records] == [[0, 1], [2, 3], [4, 5]]
    # B = 32: every max(1, 50 // 32) = 1 step; B = 64: 1; B = 300: every step, each a whole epoch
    assert [a for a, _, _ in seen] == list(range(1, 23)) and all(a == s for a, _, s in seen)
    # 10 batches of 32 an epoch, the last one 12 rows: 9 x 32 + 12 = 300 after step 10
    assert seen[9][1] == 300 and seen[12][1] == 300 + 3 * 32
    assert seen[-1][1] == examples_seen(PHASES, 300)

    with jax.numpy_dtype_promotion("standard"):
        state, records = train_phases(
            fresh(),
            step,
            (x, y),
            PHASES,
            rule="sqrt",
            seed=3,
            every_examples=64 * 3,
            callback=lambda s, at, ex: at >= 15,
        )
    assert int(state.step) == 16 and [r.steps for r in records] == [13, 3]  # B = 32 every 6 steps, then 64 every 3


def test_learning_rate_rules():
    phases = [Phase(16, 1), Phase(64, 1), Phase(256, 1)]
    assert phase_learning_rates(0.1, phases, "constant") == [0.1, 0.1, 0.1]
    assert phase_learning_rates(0.1, phases, "sqrt") == pytest.approx([0.1, 0.2, 0.4])
    assert phase_learning_rates(0.1, phases, "linear") == pytest.approx([0.1, 0.4, 1.6])
    with pytest.raises(ConfigError, match="unknown learning-rate rule 'cubic'"):
        phase_learning_rates(0.1, phases, "cubic")


@pytest.mark.parametrize(
    ("text", "phases", "message"),
    [
        ("16:0", None, "BATCH:STEPS"),
        ("16", None, "BATCH:STEPS"),
        ("a:3", None, "BATCH:STEPS"),
        (None, (Phase(400, 2),), "must be 1 to the 300 training examples"),
        (None, (), "at least one phase"),
    ],
)
def test_a_bad_schedule_is_one_clear_line(tiny, text, phases, message):
    x, y = jnp.asarray(tiny.x_train), jnp.asarray(tiny.y_train)
    with pytest.raises(ConfigError, match=message):
        phases = parse_phases(text) if text else phases
        train_phases(fresh(), make_train_step(softmax_cross_entropy), (x, y), phases)
    with pytest.raises(ConfigError, match="2 learning rates for 1 phases"):
        train_phases(fresh(), make_train_step(softmax_cross_entropy), (x, y), (Phase(8, 1),), learning_rates=[1, 2])
