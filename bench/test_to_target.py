"""The time-to-target benchmark's cases train exactly what the sweep trained: the same
steps to target for the same seed and learning rate, for jbatch and for the peers."""

import importlib.util
import os

import jax
import pytest

from bench.to_target import JbatchRunner, case
from jbatch.analysis.selection import replica_summary
from jbatch.workloads.model import make_model
from tests.helpers import TINY, sweep, tiny_config


@pytest.fixture(scope="module")
def swept(tiny, tmp_path_factory):
    cfg = tiny_config(batch_sizes=(1, 16, "full"), learning_rates=(0.3,), budget_steps=60, evals=30)
    directory, doc = sweep(cfg, tmp_path_factory.mktemp("conv"), tiny)
    return directory, doc, tiny


@pytest.mark.slow
@pytest.mark.parametrize("regime", ["stochastic", "mini-batch-16", "full-batch"])
def test_a_case_reaches_the_target_in_the_sweeps_steps(swept, regime):
    directory, doc, ds = swept
    c = case(regime, results=directory)
    result = doc.result(c.batch_size)
    want = {r.seed: replica_summary(r, result, "test_accuracy", 0.7)["steps_to_target"] for r in result.replicas}
    model_of = lambda seed: make_model("mlp", 64, 10, seed=seed, widths=TINY.workload.widths)  # noqa: E731
    runner = JbatchRunner(
        c,
        model_of,
        (jax.device_put(ds.x_train), jax.device_put(ds.y_train)),
        (jax.device_put(ds.x_test), jax.device_put(ds.y_test)),
    )
    for seed in (0, 1):
        got = runner.run(runner.setup(seed), seed)
        assert got["steps"] == want[seed] and got["reached"] == (want[seed] is not None)
    from flax import nnx

    from bench.peers import TO_TARGET
    from bench.runners import mlp_weights

    for name in TO_TARGET:  # every peer trains the same schedule to the same steps
        if name == "torch-eager" and importlib.util.find_spec("torch") is None:
            continue  # an optional peer (pip install -e '.[peers]')
        if name == "keras-fit":
            if importlib.util.find_spec("keras") is None:
                continue
            os.environ.setdefault("KERAS_BACKEND", "jax")
        kw = {"model_of": model_of} if name.startswith("flax") else {}
        peer = TO_TARGET[name](
            c,
            lambda s: mlp_weights(nnx.state(model_of(s), nnx.Param)),
            ds.x_train,
            ds.y_train,
            ds.x_test,
            ds.y_test,
            **kw,
        )
        assert peer.run(peer.setup(1), 1)["steps"] == want[1], name
