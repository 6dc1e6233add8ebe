"""Models as users write them: BatchNorm, Dropout and ``nnx.RNN`` through every part of a
sweep, in the right mode; padding kept out of batch statistics; optimizer factories with
optax schedules; the pre-check that fails in seconds; failures after training recorded."""

import json

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx

import jbatch
from jbatch.core.epoch import make_evaluate
from jbatch.core.loss import softmax_cross_entropy
from jbatch.core.optim import set_learning_rate
from jbatch.core.replica import stack_host
from jbatch.core.step import Batch, init_train_state, make_eval_step, make_train_step
from jbatch.errors import ConfigError
from tests.helpers import assert_trees_close


class ConvNet(nnx.Module):
    """A user's image model: convolution, BatchNorm, Dropout, a dense layer with BatchNorm."""

    def __init__(self, rngs: nnx.Rngs):
        self.conv = nnx.Conv(1, 4, kernel_size=(3, 3), rngs=rngs)
        self.norm = nnx.BatchNorm(4, rngs=rngs)
        self.drop = nnx.Dropout(0.3, rngs=rngs)
        self.dense = nnx.Linear(8 * 8 * 4, 16, rngs=rngs)
        self.norm2 = nnx.BatchNorm(16, rngs=rngs)
        self.out = nnx.Linear(16, 10, rngs=rngs)

    def __call__(self, x):
        h = jax.nn.relu(self.norm(self.conv(x)))
        h = self.drop(h.reshape(h.shape[0], -1))
        return self.out(jax.nn.relu(self.norm2(self.dense(h))))


def make_convnet(seed: int) -> nnx.Module:
    return ConvNet(nnx.Rngs(seed))


class Recurrent(nnx.Module):
    """A user's sequence model: a GRU over the rows of an image, read out at the last step."""

    def __init__(self, rngs: nnx.Rngs):
        self.rnn = nnx.RNN(nnx.GRUCell(8, 16, rngs=rngs), rngs=rngs)
        self.out = nnx.Linear(16, 10, rngs=rngs)

    def __call__(self, x):
        return self.out(self.rnn(x)[:, -1])


def make_recurrent(seed: int) -> nnx.Module:
    return Recurrent(nnx.Rngs(seed))


def adamw_cosine(learning_rate, warmup_steps=5, decay_steps=60):
    """An optimizer as optax users write it: a schedule built from the learning rate."""
    return optax.adamw(optax.warmup_cosine_decay_schedule(0.0, learning_rate, warmup_steps, decay_steps))


@pytest.fixture(autouse=True)
def _optax_promotion():
    """optax's schedules and Adam mix Python floats with int32 counts: JAX's standard dtype
    promotion, as users run it (the suite is strict for jbatch's own code)."""
    with jax.numpy_dtype_promotion("standard"):
        yield


@pytest.fixture(scope="module")
def images(digits):
    shape = lambda x: x.reshape(-1, 8, 8, 1)  # noqa: E731
    return shape(digits.x_train[:192]), digits.y_train[:192], shape(digits.x_test[:120]), digits.y_test[:120]


def _eval_loss(state, x, y, batch_size):
    evaluate = jax.jit(make_evaluate(make_eval_step(softmax_cross_entropy, True), batch_size))
    return float(evaluate(state, (jnp.asarray(x), jnp.asarray(y)))["loss"])


@pytest.mark.slow
def test_evaluation_is_in_eval_mode_and_does_not_depend_on_the_cut(images):
    x, y = jnp.asarray(images[0]), jnp.asarray(images[1])
    state = init_train_state(make_convnet(0), optax.sgd(0.1))
    step = jax.jit(make_train_step(softmax_cross_entropy))
    for i in range(3):  # BatchNorm's running averages move, Dropout draws
        state, _ = step(state, Batch(x[32 * i : 32 * (i + 1)], y[32 * i : 32 * (i + 1)]))
    cuts = [_eval_loss(state, images[2], images[3], b) for b in (7, 50, 120)]
    assert cuts == pytest.approx([cuts[0]] * 3, rel=1e-5)  # train mode: each cut's own batch statistics
    model = state.model()  # eval mode: the running averages, no dropout
    expected = float(softmax_cross_entropy(model(jnp.asarray(images[2])), jnp.asarray(images[3])).mean())
    assert cuts[0] == pytest.approx(expected, rel=1e-5)
    model.train()
    assert float(softmax_cross_entropy(model(jnp.asarray(images[2])), jnp.asarray(images[3])).mean()) != (
        pytest.approx(expected, rel=1e-3)
    )  # the modes really differ


@pytest.mark.parametrize("microbatch", [None, 4])
def test_padding_rows_stay_out_of_batch_statistics(images, microbatch):
    x, y = jnp.asarray(images[0][:8]), jnp.asarray(images[1][:8])
    garbage = x.at[3:].set(100.0)  # rows 3.. are padding: whatever they hold must not matter
    mask = jnp.arange(8) < 3
    step = jax.jit(make_train_step(softmax_cross_entropy, microbatch))
    state = init_train_state(make_convnet(0), optax.sgd(0.1))
    padded, m = step(state, Batch(garbage, y, mask))
    exact, e = step(state, Batch(x[:3], y[:3]))  # with M = 4: the second micro-batch is all padding
    assert float(m["examples"]) == 3 and float(m["loss"]) == pytest.approx(float(e["loss"]), rel=1e-6)
    assert_trees_close(padded.params, exact.params)
    assert_trees_close(nnx.filter_state(padded.rest, nnx.BatchStat), nnx.filter_state(exact.rest, nnx.BatchStat))


def test_host_copies_of_states_with_rng_keys_stack(images):
    state = init_train_state(make_convnet(0), optax.sgd(0.1))
    host = jax.device_get(state)
    stacked = stack_host([host, host])
    keys = [v for v in jax.tree.leaves(stacked.rest) if jax.dtypes.issubdtype(v.dtype, jax.dtypes.prng_key)]
    assert keys and keys[0].shape == (2,)
    assert np.array_equal(jax.random.key_data(keys[0][1]), jax.random.key_data(keys[0][0]))


@pytest.mark.slow
def test_a_recurrent_model_sweeps_with_the_default_measurements(images, tmp_path):
    """``nnx.RNN`` keeps an RNG stream for its carry; the README's example sweeps a CNN with
    BatchNorm and Dropout (``tests/test_repo.py``)."""
    model = make_recurrent
    data = tuple(a.reshape(-1, 8, 8) if a.ndim > 1 else a for a in images)
    doc = jbatch.sweep(
        model=model,
        data=data,
        optimizer=adamw_cosine,
        batch_sizes=[32],
        learning_rates=[0.003, 0.03],
        seeds=[0, 1],
        target=("test_accuracy", 0.5),
        results_dir=tmp_path,
        budget_steps=40,
        budget_epochs=2,
        evals=20,
        progress=False,
        report=False,
        noise_unroll=1,
    )
    assert doc.checks.learning_rate == "scaled"  # the schedule compares the learning rate in Python
    assert not doc.checks.batch_statistics and not doc.checks.inexact
    for b, result in doc.batch_sizes.items():
        assert not result.failures, (b, result.failures)
        assert any(r.noise for r in result.replicas), b  # the probes ran on the best's checkpoints
        for rep in result.replicas[:1]:  # step 0 is evaluated in eval mode, on the initial model
            state = init_train_state(model(rep.seed), optax.sgd(0.1))
            assert rep.curve.test_loss[0] == pytest.approx(_eval_loss(state, data[2], data[3], 2048), rel=1e-5)
    assert max(a for r in doc.batch_sizes["32"].replicas for a in r.curve.test_accuracy if a) > 0.5


@pytest.mark.slow
def test_schedule_factory_updates_as_optax_built_outside(images):
    """jbatch's replica at learning rate 0.03 takes the steps optax's own adamw takes."""
    from jbatch.config import SweepConfig
    from jbatch.sweeps.optimizer import optimizer_for
    from jbatch.workloads.workload import resolve

    wl = resolve(images, make_convnet, adamw_cosine)
    opt = optimizer_for(SweepConfig.of(batch_sizes=(16,), learning_rates=(0.003, 0.03)), wl)
    assert opt.learning_rate == "scaled"
    params = nnx.state(make_convnet(0), nnx.Param)
    ours = set_learning_rate(opt.tx.init(params), 0.03)
    reference = optax.adamw(optax.warmup_cosine_decay_schedule(0.0, 0.03, 5, 60))
    theirs = reference.init(params)
    p, q = params, params
    for t in range(12):  # across the warm-up and into the decay
        g = jax.tree.map(lambda v, t=t: jnp.cos(v * (t + 1.0)), params)
        u, ours = opt.tx.update(g, ours, p)
        w, theirs = reference.update(g, theirs, q)
        p, q = optax.apply_updates(p, u), optax.apply_updates(q, w)
        assert_trees_close(p, q)


def test_numeric_defaults_stay_python_constants_and_the_rest_is_injected(images):
    from jbatch.config import SweepConfig
    from jbatch.sweeps.optimizer import optimizer_for
    from jbatch.workloads.workload import resolve

    def momentum_warmup(learning_rate, momentum=0.9, warmup_steps=3):  # warmup_steps is compared in Python
        return optax.sgd(optax.linear_schedule(0.0, 1.0, warmup_steps) if warmup_steps > 0 else 1.0, momentum=momentum)

    opt = optimizer_for(
        SweepConfig.of(batch_sizes=(16,), momentum=(0.5, 0.9)), resolve(images, make_convnet, momentum_warmup)
    )
    assert opt.learning_rate == "injected" and set(opt.values) == {"learning_rate", "momentum"}


@pytest.mark.parametrize(
    ("optimizer", "settings", "message"),
    [
        (
            lambda learning_rate: optax.adam(
                optax.warmup_cosine_decay_schedule(0.0, learning_rate, 5, 50, end_value=1e-3)
            ),
            {},
            "its update is not proportional to it",
        ),
        (
            lambda learning_rate, momentum=0.9: optax.sgd(
                learning_rate, momentum=momentum if momentum < 0.95 else 0.95
            ),
            {"momentum": [0.9, 0.99]},
            "uses its swept hyperparameter 'momentum' in Python at",
        ),
    ],
)
def test_factories_that_cannot_be_swept_are_refused_before_training(images, tmp_path, optimizer, settings, message):
    with pytest.raises(ConfigError, match=message):
        jbatch.sweep(
            model=make_convnet, data=images, optimizer=optimizer, results_dir=tmp_path, progress=False, **settings
        )
    assert not any(tmp_path.iterdir())


class NaNOut(nnx.Module):
    def __init__(self, rngs: nnx.Rngs):
        self.out = nnx.Linear(64, 10, rngs=rngs)

    def __call__(self, x):
        return self.out(x.reshape(x.shape[0], -1)) * jnp.nan


class TrainOnly(nnx.Module):
    """Fails in train mode only: what a model-shape check at eval never sees."""

    def __init__(self, rngs: nnx.Rngs):
        self.out = nnx.Linear(64, 10, rngs=rngs)
        self.deterministic = True

    def __call__(self, x):
        if not self.deterministic:
            raise RuntimeError("no training today")
        return self.out(x.reshape(x.shape[0], -1))


def _fails_for_seed_1(seed):
    if seed == 1:
        raise ValueError("seed 1 is cursed")
    return make_convnet(seed)


class DenseNorm(nnx.Module):
    def __init__(self, rngs: nnx.Rngs):
        self.dense = nnx.Linear(64, 16, rngs=rngs)
        self.norm = nnx.BatchNorm(16, rngs=rngs)
        self.out = nnx.Linear(16, 10, rngs=rngs)

    def __call__(self, x):
        return self.out(jax.nn.relu(self.norm(self.dense(x.reshape(x.shape[0], -1)))))


class ConvNorm(nnx.Module):
    def __init__(self, rngs: nnx.Rngs):
        self.conv = nnx.Conv(1, 4, kernel_size=(3, 3), rngs=rngs)
        self.norm = nnx.BatchNorm(4, rngs=rngs)
        self.out = nnx.Linear(8 * 8 * 4, 10, rngs=rngs)

    def __call__(self, x):
        return self.out(jax.nn.relu(self.norm(self.conv(x))).reshape(x.shape[0], -1))


@pytest.mark.parametrize(
    ("model", "settings", "message"),
    [
        (lambda s: NaNOut(nnx.Rngs(s)), {}, "the model's loss before any update is nan in training"),
        (lambda s: TrainOnly(nnx.Rngs(s)), {}, r"failed in training \(train mode\), seed 0: RuntimeError: no training"),
        (_fails_for_seed_1, {}, r"raised ValueError: seed 1 is cursed at .*test_stateful.py:\d+ \(called with 1\)"),
        (lambda s: DenseNorm(nnx.Rngs(s)), {"batch_sizes": [1, 16]}, "batch size 1: the model's BatchNorm normal"),
        (lambda s: DenseNorm(nnx.Rngs(s)), {"batch_sizes": [10]}, "its last batch holds 1 real row"),  # 19 x 10 + 1
        (lambda s: ConvNorm(nnx.Rngs(s)), {"batch_sizes": [1, 16]}, None),  # 64 values per feature per row: fine
    ],
)
def test_the_precheck_fails_in_seconds_and_writes_nothing(images, tmp_path, model, settings, message):
    from jbatch.config import SweepConfig
    from jbatch.sweeps.precheck import precheck
    from jbatch.sweeps.session import Session
    from jbatch.workloads.workload import resolve

    data = (images[0][:191], images[1][:191], images[2], images[3])
    wl = resolve(data, model, "momentum")
    settings = {"batch_sizes": [16, "full"]} | settings
    config = SweepConfig.of(seeds=(0, 1), **{k: tuple(v) for k, v in settings.items()})
    sizes = [b if b != "full" else 191 for b in config.grid.batch_sizes]
    if message is None:
        assert precheck(Session.open(config, wl), sizes).batch_statistics
        return
    with pytest.raises(ConfigError, match=message):
        precheck(Session.open(config, wl), sizes)
    with pytest.raises(ConfigError, match=message):  # through the sweep: before any file is written
        jbatch.sweep(
            model=model, data=data, optimizer="momentum", results_dir=tmp_path, seeds=[0, 1], progress=False, **settings
        )
    assert not any(tmp_path.iterdir())


@pytest.mark.slow
def test_a_failure_after_training_is_recorded_not_lost(images, tmp_path, monkeypatch, capsys):
    import jbatch.sweeps.batch

    def broken(*args, **kw):
        raise RuntimeError("probe exploded")

    monkeypatch.setattr(jbatch.sweeps.batch, "probe_replicas", broken)
    doc = jbatch.sweep(
        model="mlp",
        data=images,
        batch_sizes=[16, 64],
        learning_rates=[0.1],
        seeds=[0],
        target=("test_accuracy", 0.5),
        results_dir=tmp_path,
        budget_steps=20,
        budget_epochs=1,
        widths=(16,),
        extend_grid=0,
        noise_unroll=1,
        report=False,
    )
    stored = json.loads((tmp_path / doc.name / "sweep.json").read_text())
    for b in ("16", "64"):
        assert stored["batch_sizes"][b]["failures"]["noise"].startswith("RuntimeError: probe exploded")
        assert stored["batch_sizes"][b]["replicas"][0]["curve"]["test_accuracy"]  # the training is there
    assert "B=16: the gradient-noise probe failed; the training is kept" in capsys.readouterr().out


def test_a_target_met_before_any_update_is_left_out_of_the_fit():
    from jbatch.analysis.summary import sweep_fit
    from jbatch.report.sweep import fit_sentence

    def row(b, steps):
        reps = [{"reached": True, "steps_to_target": s, "setting": (("learning_rate", 0.1),)} for s in steps]
        return {
            "row": {
                "batch_size": b,
                "steps_to_target": {"n": len(steps), "min": min(steps), "mean": float(np.mean(steps))},
                "best_learning_rate": 0.1,
                "lr_edge": None,
            },
            "replicas": reps,
        }

    rows = [row(1, [0, 3]), row(4, [40, 44]), row(16, [12, 13]), row(64, [6, 7])]
    fit = sweep_fit(rows)
    assert fit["points"] == 3 and fit["at_start"] == [1]
    assert "At B = 1 a seed met the target before any update" in fit_sentence(fit, rows)
    assert sweep_fit(rows[:3]) is None
    assert "Fewer than 3 batch sizes reached the target after an update" in fit_sentence(None, rows[:3])
