"""Data-parallel checks, run by tests/test_parallel.py in a fresh process with 4 CPU host
devices (``XLA_FLAGS=--xla_force_host_platform_device_count=4``), so the rest of the suite
keeps its single device. Exits non-zero with a message when a check fails."""

from __future__ import annotations

import dataclasses
import re
import sys

import jax
import jax.numpy as jnp
import numpy as np

from jbatch.core.batching import epoch_order
from jbatch.core.engine import compile_program
from jbatch.core.epoch import make_epoch
from jbatch.core.loss import softmax_cross_entropy
from jbatch.core.optim import make_optimizer
from jbatch.core.parallel import batch_sharding, data_mesh, padded_width, place
from jbatch.core.replica import init_replicas, replica_orders, unstack
from jbatch.core.step import init_train_state, make_train_step
from jbatch.workloads.data import load_digits
from jbatch.workloads.model import make_model
from tests.helpers import assert_trees_close

STEP = make_train_step(softmax_cross_entropy)
TX = make_optimizer("momentum", 0.05)


def state(seed: int = 0):
    return init_train_state(make_model("mlp", 64, 10, seed=seed, widths=(32,)), TX)


def single_and_sharded(n: int, b: int, mesh) -> tuple:
    ds = load_digits()
    data = (jnp.asarray(ds.x_train[:n]), jnp.asarray(ds.y_train[:n]))
    order = jnp.asarray(epoch_order(0, 0, n))
    single = compile_program(make_epoch(STEP, n, b), state(), data, order)
    sharded_epoch = make_epoch(STEP, n, b, sharding=batch_sharding(mesh), width=padded_width(b, mesh))
    sharded = compile_program(sharded_epoch, place(state(), mesh), place(data, mesh), place(order, mesh))
    s1, m1 = single(state(), data, order)
    s2, m2 = sharded(place(state(), mesh), place(data, mesh), place(order, mesh))
    return (s1, m1), (s2, m2), sharded


def main() -> None:
    assert jax.local_device_count() == 4, f"expected 4 host devices, got {jax.local_device_count()}"
    mesh = data_mesh()

    # 1. Sharded epoch == single-device epoch: even (32), uneven (6 -> padded to 8), full batch.
    programs = {}
    for n, b in [(300, 32), (300, 6), (300, 300), (302, 302)]:
        (s1, m1), (s2, m2), programs[n, b] = single_and_sharded(n, b, mesh)
        assert_trees_close(m1["loss"], m2["loss"], rtol=2e-5, atol=2e-6)
        assert_trees_close(s1.params, s2.params, rtol=2e-5, atol=2e-6)
        assert int(s2.step) == int(s1.step)
        print(f"ok: N={n} B={b} on 4 devices equals 1 device ({int(s1.step)} steps)")

    # 2. The batch really is split: each device gathers B/4 rows, gradients are all-reduced.
    hlo = programs[300, 32].fn.as_text()
    assert re.search(r"f32\[8,64\]", hlo), "no per-device [8, 64] batch in the partitioned program"
    assert "all-reduce" in hlo, "no gradient all-reduce in the partitioned program"
    print("ok: B=32 on 4 devices gathers [8, 64] per device and all-reduces")

    # 3. vmap-ed replicas under the same sharding equal the single-device replicas.
    ds = load_digits()
    n, b, seeds = 300, 32, [0, 1, 2]
    data = (jnp.asarray(ds.x_train[:n]), jnp.asarray(ds.y_train[:n]))
    orders = jnp.asarray(replica_orders(seeds, 0, n))
    stacked = init_replicas(lambda s: make_model("mlp", 64, 10, seed=s, widths=(32,)), TX, seeds, [0.05] * 3)
    epoch = make_epoch(STEP, n, b, sharding=batch_sharding(mesh), width=padded_width(b, mesh))
    program = compile_program(epoch, place(stacked, mesh), place(data, mesh), place(orders, mesh), in_axes=(0, None, 0))
    out, _ = program(place(stacked, mesh), place(data, mesh), place(orders, mesh))
    single = compile_program(make_epoch(STEP, n, b), state(0), data, orders[0])
    for r, seed in enumerate(seeds):
        alone, _ = single(state(seed), data, orders[r])
        assert_trees_close(unstack(out.params, r), alone.params, rtol=2e-5, atol=2e-6)
    print("ok: 3 vmapped replicas on 4 devices equal 3 single-device runs")

    # 4. jbatch train --devices 4 gives the single-device result.
    from jbatch.config import TrainConfig
    from jbatch.sweeps.train import train_and_evaluate

    cfg = TrainConfig.of(epochs=1, batch_size=30, widths=(32,))
    one, four = train_and_evaluate(cfg), train_and_evaluate(dataclasses.replace(cfg, devices=4))
    np.testing.assert_allclose([e.train_loss for e in one.epochs], [e.train_loss for e in four.epochs], rtol=2e-5)
    print("ok: train_and_evaluate on 4 devices equals 1 device")

    # 5. A BatchNorm model: batches of 30 padded to 32 rows for 4 devices, the padding kept out of its statistics.
    from flax import nnx

    from jbatch.workloads.workload import resolve

    class Normed(nnx.Module):
        def __init__(self, seed):
            rngs = nnx.Rngs(seed)
            self.hidden, self.norm, self.out = (
                nnx.Linear(64, 32, rngs=rngs),
                nnx.BatchNorm(32, rngs=rngs),
                nnx.Linear(32, 10, rngs=rngs),
            )

        def __call__(self, x):
            return self.out(jax.nn.relu(self.norm(self.hidden(x))))

    wl = resolve(ds, Normed, "sgd")
    one, four = (train_and_evaluate(dataclasses.replace(cfg, devices=d), workload=wl) for d in (1, 4))
    np.testing.assert_allclose([e.train_loss for e in one.epochs], [e.train_loss for e in four.epochs], rtol=2e-5)
    assert_trees_close(one.state.rest, four.state.rest, rtol=2e-5, atol=2e-6)  # the running averages too
    print("ok: a BatchNorm model on 4 devices (padded batches) equals 1 device")


if __name__ == "__main__":
    try:
        main()
    except AssertionError as e:
        print(f"FAILED: {e}", file=sys.stderr)
        sys.exit(1)
