"""Time to target inside ``pytest --benchmark-only``: for the default workload, one case per
regime (stochastic B=1, mini-batch B=16 and 64, full batch), each at the best learning rate
the committed default sweep found for it (read from ``results/digits-mlp-sgd``), for jbatch
and every installed peer. One round trains one model from its seed's initial weights
(round i: seed i) in the sweep's batches, evaluating test accuracy at the sweep's fine
cadence, until 95%; compilation happens before the rounds and is recorded apart. A peer
that misses the target within the budget is recorded as such (``reached`` in extra_info).
Compare runs with ``pytest-benchmark compare``; ``jbatch report --benchmark`` tabulates.
"""

from __future__ import annotations

import os

import pytest

from jbatch.convergence import FULL_ONLY, REGIMES, JbatchRunner, case

METHODS = ("jbatch", "flax-nnx-loop", "flax-nnx-fast", "keras-fit", "torch-eager")


@pytest.fixture(scope="session")
def digits_data():
    from jbatch.data import load_digits

    return load_digits()


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("regime", sorted(REGIMES))
def test_time_to_target(benchmark, digits_data, full, regime, method):
    if regime in FULL_ONLY and not full:
        pytest.skip("not in the default grid (use --full)")
    import jax

    from jbatch.benchmark import mlp_weights
    from jbatch.model import make_model

    c = case(regime)
    ds = digits_data
    model_of = lambda seed: make_model("mlp", 64, 10, seed=seed)  # noqa: E731  the sweep's model
    if method == "jbatch":
        runner = JbatchRunner(c, model_of, (jax.device_put(ds.x_train), jax.device_put(ds.y_train)),
                              (jax.device_put(ds.x_test), jax.device_put(ds.y_test)))  # fmt: skip
    else:
        if method == "torch-eager":
            pytest.importorskip("torch", reason="PyTorch is a peer: pip install -e '.[peers]'")
        if method == "keras-fit":
            os.environ.setdefault("KERAS_BACKEND", "jax")  # before the import: Keras picks its backend then
            pytest.importorskip("keras", reason="Keras is a peer: pip install -e '.[peers]'")
        from bench.peers import TO_TARGET

        def weights_of(seed):
            from flax import nnx

            return mlp_weights(nnx.state(model_of(seed), nnx.Param))

        kw = {"model_of": model_of} if method.startswith("flax") else {}
        runner = TO_TARGET[method](c, weights_of, ds.x_train, ds.y_train, ds.x_test, ds.y_test, **kw)
    rounds = 7 if full else 3
    runner.run(runner.setup(0), 0)  # warm-up: first calls (and any new shape) stay out of the rounds
    seeds = iter(range(rounds))
    outcomes = []

    def setup():
        seed = next(seeds)
        return (runner.setup(seed), seed), {}

    def one(state, seed):
        outcomes.append(runner.run(state, seed))

    benchmark.group = f"time to target: {regime}"
    benchmark.pedantic(one, setup=setup, rounds=rounds, warmup_rounds=0, iterations=1)
    steps = [o["steps"] for o in outcomes]
    benchmark.extra_info.update(
        kind="time-to-target", workload="digits", method=method, regime=regime, batch_size=c.batch_size,
        learning_rate=c.learning_rate, target=c.target, reached=[o["reached"] for o in outcomes], steps_to_target=steps,
        epochs_to_target=[None if s is None else s / c.steps_per_epoch for s in steps],
        examples_to_target=[None if s is None else min(s * c.batch_size, s // c.steps_per_epoch * c.num_train
                                                       + s % c.steps_per_epoch * c.batch_size) for s in steps],
        seeds=list(range(rounds)), compile_seconds=runner.compile_seconds, budget_steps=c.budget,
        best_learning_rate_from=c.source,
    )  # fmt: skip
