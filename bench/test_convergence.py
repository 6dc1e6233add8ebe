"""Time to target inside ``pytest --benchmark-only``: for the default workload, one case per
regime (stochastic B=1, mini-batch B=16 and 64, full batch), each at the best learning rate
the committed default sweep found for it (read from ``results/digits-mlp-sgd``), for jbatch
and every installed peer, for each of three seeds. One round trains one model from the
seed's initial weights in the sweep's batches (cut before the round, as a data loader
would), evaluating test accuracy at the sweep's fine cadence, until 95%; every round of a
case is the same seed, so its spread is timing noise alone, and at least 7 rounds give
the median an interval. Seeds are paired across methods (the same steps to the target):
``jbatch report --benchmark`` compares methods seed by seed. jbatch's case also records
its profile: the same schedule in the sweep's chunked form, split into training,
evaluation and the rest (dispatch, host syncs). Compilation happens before the rounds and
is recorded apart. A peer that misses the target within the budget is recorded as such.
"""

from __future__ import annotations

import os

import pytest

from bench.to_target import FULL_ONLY, REGIMES, JbatchRunner, case

METHODS = ("jbatch", "flax-nnx-loop", "flax-nnx-fast", "keras-fit", "torch-eager")
SEEDS = (0, 1, 2)
ROUNDS = 7  # the fewest for a 95% order-statistic interval of a median
_RUNNERS: dict = {}  # (regime, method) -> runner: compiled once, run for every seed


@pytest.fixture(scope="session")
def digits_data():
    from jbatch.workloads.data import load_digits

    return load_digits()


def runner_for(regime, method, ds):
    """The case's runner for ``method`` (built and compiled once per session)."""
    if (regime, method) in _RUNNERS:
        return _RUNNERS[(regime, method)]
    import jax

    from bench.runners import mlp_weights
    from jbatch.workloads.model import make_model

    c = case(regime)
    model_of = lambda seed: make_model("mlp", 64, 10, seed=seed)  # noqa: E731  the sweep's model
    if method == "jbatch":
        runner = JbatchRunner(
            c,
            model_of,
            (jax.device_put(ds.x_train), jax.device_put(ds.y_train)),
            (jax.device_put(ds.x_test), jax.device_put(ds.y_test)),
        )
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
    _RUNNERS[(regime, method)] = runner
    return runner


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("regime", sorted(REGIMES))
def test_time_to_target(benchmark, digits_data, full, regime, method, seed):
    if regime in FULL_ONLY and not full:
        pytest.skip("not in the default grid (use --full)")
    c = case(regime)
    runner = runner_for(regime, method, digits_data)
    runner.run(runner.setup(seed), seed)  # warm-up: first calls (and any new shape) stay out of the rounds
    outcomes = []

    def setup():
        return (runner.setup(seed), seed), {}

    def one(state, seed):
        outcomes.append(runner.run(state, seed))

    benchmark.group = f"time to target: {regime}, seed {seed}"
    benchmark.pedantic(one, setup=setup, rounds=ROUNDS, warmup_rounds=0, iterations=1)
    steps = outcomes[0]["steps"]
    assert all(o == outcomes[0] for o in outcomes), "every round of a seed trains the same steps"
    benchmark.extra_info.update(
        kind="time-to-target",
        workload="digits",
        method=method,
        regime=regime,
        batch_size=c.batch_size,
        learning_rate=c.learning_rate,
        target=c.target,
        seed=seed,
        reached=outcomes[0]["reached"],
        steps_to_target=steps,
        epochs_to_target=None if steps is None else steps / c.steps_per_epoch,
        compile_seconds=runner.compile_seconds,
        budget_steps=c.budget,
        best_learning_rate_from=c.source,
        profile=runner.profile(seed) if method == "jbatch" else None,
    )


@pytest.mark.parametrize("method", ["flax-nnx-loop", "flax-nnx-fast", "torch-eager"])
def test_a_peer_steps_as_fast_to_the_target_as_in_its_throughput_case(benchmark, digits_data, method):
    """At B = 1 (an evaluation every ~60 steps), a peer's seconds per step on the way to the
    target are within 2x of its own throughput case's: the to-target harness adds no cost of
    its own (it once gathered every batch eagerly inside the timed region: 6.7x for NNX).
    A round is one run of each, interleaved; the benchmark's own times are of the pair."""
    import time

    import numpy as np

    from bench.peers import PEERS
    from bench.workloads import make_workload

    runner = runner_for("stochastic", method, digits_data)
    loop = PEERS[method](make_workload("digits"), 1, 1000)
    steps = runner.run(runner.setup(0), 0)["steps"]
    loop.run()
    to_target, throughput = [], []

    def pair(state):
        start = time.perf_counter()
        runner.run(state, 0)
        to_target.append((time.perf_counter() - start) / steps)
        start = time.perf_counter()
        loop.run()
        throughput.append((time.perf_counter() - start) / loop.steps)

    benchmark.group = "harness: seconds per step, to the target against throughput (B = 1)"
    benchmark.pedantic(pair, setup=lambda: ((runner.setup(0),), {}), rounds=5, warmup_rounds=0, iterations=1)
    ratio = float(np.median(to_target) / np.median(throughput))
    benchmark.extra_info.update(kind="harness-check", method=method, ratio=ratio)
    assert ratio < 2.0, f"{method}: {ratio:.2f}x the seconds per step of its throughput case"
