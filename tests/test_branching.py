"""The local critical batch size by branching (``jbatch.sweeps.branching``): the trunk and each
branch are the batch-size schedules they say they are (recomputed here by hand), B* follows
its definition, the noise scale is the probe's at the same checkpoint, bad plans are one line."""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from jbatch.core.batching import epoch_order
from jbatch.core.epoch import make_evaluate
from jbatch.core.loss import softmax_cross_entropy
from jbatch.core.optim import set_learning_rate
from jbatch.core.phases import Phase, train_phases
from jbatch.core.step import Batch, init_train_state, make_eval_step, make_train_step
from jbatch.errors import ConfigError
from jbatch.sweeps.branching import BranchPlan, b_star, local_critical_batch
from jbatch.sweeps.noise import gradient_moments
from jbatch.workloads.model import make_model
from tests.helpers import session, tiny_config


def fresh(seed):
    tx = optax.inject_hyperparams(optax.sgd)(learning_rate=0.05)
    return init_train_state(make_model("mlp", 64, 10, seed=seed, widths=(16,)), tx)


@pytest.fixture(scope="module")
def splits(tiny):
    return (jnp.asarray(tiny.x_train), jnp.asarray(tiny.y_train)), (jnp.asarray(tiny.x_test), jnp.asarray(tiny.y_test))


@pytest.fixture(scope="module")
def tiny_session(tiny):
    """The tiny digits' session (its data on the device, its step and programs): what branches train with."""
    return session(tiny_config(batch_sizes=(8,), learning_rates=(0.05,)), tiny)


@pytest.mark.slow
def test_trunk_and_branches_are_the_schedules_they_say(splits, tiny_session):
    train, held_out = splits
    plan = BranchPlan(
        batch_size=8,
        learning_rate=0.05,
        checkpoints=(0, 20),
        examples=64,
        multipliers=(1, 2, 4),
        seeds=(0,),
        noise_examples=100,
    )
    result = local_critical_batch(tiny_session, fresh, plan)
    assert result.batch_sizes == [8, 16, 32]
    step = make_train_step(softmax_cross_entropy)
    evaluate = jax.jit(make_evaluate(make_eval_step(softmax_cross_entropy, classification=False)))  # by hand
    trunk, _ = train_phases(fresh(0), step, train, [Phase(8, 20)], learning_rates=[0.05], seed=0)
    entry = result.checkpoints[1]
    assert entry.step == 20 and entry.loss["0"] == pytest.approx(float(evaluate(trunk, held_out)["loss"]))
    # the branch at 16 by hand: 4 steps on the first Keras batches of its order, lr by the sqrt rule, the held-out
    # loss averaged over the evaluations after steps 2, 3 and 4 (every quarter of the branch, the last three)
    state, order, seen = trunk, epoch_order(10_000 + 1, 0, len(train[0])), []
    state = state.replace(opt_state=set_learning_rate(state.opt_state, jnp.asarray(0.05 * 2**0.5, jnp.float32)))
    for k in range(4):
        rows = order[16 * k : 16 * (k + 1)]
        state, _ = jax.jit(step)(state, Batch(train[0][rows], train[1][rows]))
        seen.append(float(evaluate(state, held_out)["loss"]))
    assert entry.branches["16"]["0"] == pytest.approx(np.mean(seen[1:]), rel=1e-5)
    losses = {int(b): v["0"] for b, v in entry.branches.items()}
    assert entry.b_star["0"] == b_star(losses, plan.tolerance)
    rows = np.random.default_rng(0).permutation(len(train[0]))[:100]
    want = gradient_moments(trunk, (train[0][rows], train[1][rows]), softmax_cross_entropy, population=False)
    assert entry.b_simple["0"] == pytest.approx(float(want["b_simple"]), rel=1e-4)
    first = result.checkpoints[0]  # at step 0 the trunk is the initial model
    assert first.loss["0"] == pytest.approx(float(evaluate(fresh(0), held_out)["loss"]))


def test_an_unbounded_tolerance_gives_the_largest_batch_as_a_lower_bound(tiny_session):
    plan = BranchPlan(
        batch_size=16,
        learning_rate=0.05,
        checkpoints=(10,),
        examples=64,
        multipliers=(1, 2, 4),
        tolerance=1e9,
        seeds=(0, 1),
        noise_examples=64,
    )
    entry = local_critical_batch(tiny_session, fresh, plan).checkpoints[0]
    assert entry.b_star == {"0": 64, "1": 64} and entry.censored == {"0": True, "1": True}
    assert entry.b_star_median == 64 and entry.censored_median and set(entry.loss) == {"0", "1"}


def test_the_checkpoint_b_star_comes_from_the_seeds_median_losses(tiny_session):
    plan = BranchPlan(
        batch_size=8,
        learning_rate=0.05,
        checkpoints=(10,),
        examples=64,
        multipliers=(1, 2, 4, 8),
        tolerance=0.02,
        seeds=(0, 1, 2),
        noise_examples=64,
    )
    entry = local_critical_batch(tiny_session, fresh, plan).checkpoints[0]
    spread = np.array(list(entry.branches["8"].values()))  # the B0 continuation over the seeds
    mad = np.median(np.abs(spread - np.median(spread)))
    assert entry.tolerance == pytest.approx(max(0.02, 1.4826 * mad / np.median(spread)))
    median = {int(b): float(np.median(list(v.values()))) for b, v in entry.branches.items()}
    assert entry.b_star_median == b_star(median, entry.tolerance)
    assert all(
        entry.b_star[s] == b_star({int(b): v[s] for b, v in entry.branches.items()}, entry.tolerance) for s in "012"
    )


def test_a_censored_b_star_branches_again_up_to_the_largest_candidate(tiny_session):
    plan = BranchPlan(
        batch_size=8,
        learning_rate=0.05,
        checkpoints=(10,),
        examples=32,
        multipliers=(1, 2),
        tolerance=1e9,  # every branch within: B* is censored until the ceiling
        seeds=(0,),
        noise_examples=64,
        ceiling=100,
    )
    entry = local_critical_batch(tiny_session, fresh, plan).checkpoints[0]
    assert list(entry.branches) == ["8", "16"]  # the plan's round, then rounds from its B*
    assert [(x.batch_sizes, x.examples) for x in entry.extensions] == [([16, 32, 100], 300)]  # the ceiling last
    assert entry.b_star == {"0": 100} and entry.censored == {"0": True} and entry.b_star_median == 100
    tight = local_critical_batch(tiny_session, fresh, dataclasses.replace(plan, tolerance=0.0)).checkpoints[0]
    assert not tight.extensions or tight.extensions[-1].b_star_median < tight.extensions[-1].batch_sizes[-1]


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"batch_size": 0}, "trunk's batch size must be 1 to 300"),
        ({"checkpoints": (20, 10)}, "increasing"),
        ({"multipliers": (2, 4)}, "start at 1"),
        ({"examples": 4}, "at least one batch"),
        ({"rule": "cubic"}, "rule must be one of"),
    ],
)
def test_a_bad_plan_is_one_clear_line(tiny_session, change, message):
    plan = BranchPlan(**({"batch_size": 8, "learning_rate": 0.05, "checkpoints": (0, 10), "examples": 64} | change))
    with pytest.raises(ConfigError, match=message):
        local_critical_batch(tiny_session, fresh, plan)


def test_a_diverged_trunk_is_refused_in_one_line(tiny_session):
    plan = BranchPlan(batch_size=1, learning_rate=50.0, checkpoints=(0, 30), examples=8, multipliers=(1, 2), seeds=(0,))
    with pytest.raises(ConfigError, match=r"the trunk \(B = 1, lr 50, seed 0\) diverged by step 30"):
        local_critical_batch(tiny_session, fresh, plan)


def test_each_larger_branch_keeps_its_best_learning_rate_factor(tiny_session, monkeypatch):

    def run(factors, tolerance=0.01):
        plan = BranchPlan(
            batch_size=8,
            learning_rate=0.2,
            checkpoints=(5,),
            examples=64,
            multipliers=(1, 4),
            seeds=(0,),
            noise_examples=64,
            lr_factors=factors,
            rule="linear",
            tolerance=tolerance,
        )
        return local_critical_batch(tiny_session, fresh, plan).checkpoints[0]

    one, half, both = run((1.0,)), run((0.5,)), run((1.0, 0.5))
    assert both.branches["8"] == one.branches["8"] == half.branches["8"]  # B0's continuation: its own rate
    want = min(one.branches["32"]["0"], half.branches["32"]["0"])
    assert both.branches["32"]["0"] == pytest.approx(want, rel=1e-6)
    assert both.factors["32"]["0"] == (1.0 if one.branches["32"]["0"] <= half.branches["32"]["0"] else 0.5)
    from jbatch.sweeps import branching

    trained, real = [], branching.train_phases
    monkeypatch.setattr(
        branching,
        "train_phases",
        lambda s, st, d, phases, **kw: trained.append(phases[0].batch_size) or real(s, st, d, phases, **kw),
    )
    passing = run((1.0, 0.5), tolerance=1e9)  # the rule's rate is within tolerance: the next factor is never trained
    assert (
        trained.count(32) == 1 and passing.branches["32"] == one.branches["32"] and passing.factors["32"] == {"0": 1.0}
    )
