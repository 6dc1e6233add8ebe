"""What limits K replicas at B = 1 on a CPU: vmap on one core against the replicas split
over every core (jbatch.core.parallel's one-axis mesh of host devices, one per core, the leading
(replica) axis split over it, no collectives).

    python bench/replica_cores.py [--replicas 8] [--rounds 5] [--out results/throughput/replicas.json]

Each variant is the digits MLP's scan-fused B = 1 epoch (momentum SGD, jbatch's compile
options), timed in interleaved rounds in one process so the ratios share the machine's
state. It also reports the bytes a step rewrites per replica (parameters and momentum,
read and written) and the memory traffic that implies. The process re-executes itself
with ``--xla_force_host_platform_device_count`` = the core count when it has fewer devices.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path


def _ensure_host_devices() -> None:
    want = os.cpu_count() or 1
    flag = f"--xla_force_host_platform_device_count={want}"
    if flag not in os.environ.get("XLA_FLAGS", ""):
        env = dict(os.environ, XLA_FLAGS=f"{os.environ.get('XLA_FLAGS', '')} {flag}".strip())
        os.execve(sys.executable, [sys.executable, *sys.argv], env)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--replicas", type=int, default=8)
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--out", type=Path, default=Path("results/throughput/replicas.json"))
    args = p.parse_args()
    _ensure_host_devices()

    import jax
    import jax.numpy as jnp
    import numpy as np
    import optax
    from jax.sharding import PartitionSpec as P

    from bench.workloads import LEARNING_RATE, MOMENTUM, make_workload
    from jbatch.core.batching import epoch_order
    from jbatch.core.engine import compile_program, fast_unroll
    from jbatch.core.epoch import make_epoch
    from jbatch.core.loss import softmax_cross_entropy
    from jbatch.core.parallel import batch_sharding, data_mesh, replicated
    from jbatch.core.replica import init_replicas, replica_orders
    from jbatch.core.step import init_train_state, make_train_step
    from jbatch.results import convert, dump
    from jbatch.results.records import ReplicaCoresDocument
    from jbatch.sweeps.metadata import environment_metadata

    wl = make_workload("digits")
    n, k, cores = wl.num_examples, args.replicas, jax.local_device_count()
    tx = optax.inject_hyperparams(optax.sgd)(learning_rate=LEARNING_RATE, momentum=MOMENTUM)
    epoch = make_epoch(make_train_step(softmax_cross_entropy), n, 1, unroll=fast_unroll(1))
    data = (jnp.asarray(wl.x), jnp.asarray(wl.y))
    seeds = list(range(k))
    variants = {}

    state = init_train_state(wl.model(0), tx)
    order = jnp.asarray(epoch_order(0, 0, n))
    variants["one replica"] = (compile_program(epoch, state, data, order), (state, data, order), 1)

    states, orders = init_replicas(wl.model, tx, seeds, [LEARNING_RATE] * k), jnp.asarray(replica_orders(seeds, 0, n))
    vmapped = compile_program(epoch, states, data, orders, in_axes=(0, None, 0))
    variants[f"{k} replicas, vmap on one device"] = (vmapped, (states, data, orders), k)

    mesh = data_mesh()  # its one axis splits the leading axis: here the replicas, not batch rows
    split, whole, axis = batch_sharding(mesh), replicated(mesh), P(*mesh.axis_names)
    placed = (jax.device_put(states, split), jax.device_put(data, whole), jax.device_put(orders, split))
    per_device = jax.shard_map(
        jax.vmap(epoch, in_axes=(0, None, 0)), mesh=mesh, in_specs=(axis, P(), axis), out_specs=axis
    )
    sharded = compile_program(per_device, *placed)
    variants[f"{k} replicas, vmap split over {cores} host devices (one per core)"] = (sharded, placed, k)

    # The machine's own ceiling: rewriting a buffer as large as the K replicas' weights and
    # momentum, in place, 100 times per call (an elementwise read + write, nothing else).
    leaves = jax.tree.leaves((state.params, state.opt_state))
    rewritten = 2 * sum(x.nbytes for x in leaves if x.ndim >= 1 and x.size > 1)  # read + write, per step
    sweeps = 100

    def rewrite(x):
        return jax.lax.fori_loop(0, sweeps, lambda i, v: v * 0.999 + 1e-3, x)

    state_floats = rewritten // 2 // 4  # one replica's parameters and momentum, in float32 elements
    buf = jnp.zeros((cores, k * state_floats // cores), jnp.float32)
    buf_split = jax.device_put(buf, split)
    rewrite_split = jax.shard_map(rewrite, mesh=mesh, in_specs=axis, out_specs=axis)
    streams = {
        "rewrite, one device": (compile_program(rewrite, buf), (buf,), k),
        f"rewrite, split over {cores} host devices": (compile_program(rewrite_split, buf_split), (buf_split,), k),
    }

    timed = variants | streams  # name -> (program, inputs, replicas)
    seconds = {name: [] for name in timed}
    for program, inputs, _ in timed.values():
        jax.block_until_ready(program(*inputs))  # warm-up
    for _ in range(args.rounds):  # interleaved: every variant sees the same phases of the machine
        for name, (program, inputs, _) in timed.items():
            start = time.perf_counter()
            jax.block_until_ready(program(*inputs))  # sync point: the round ends when its work is done
            seconds[name].append(time.perf_counter() - start)
    ceiling = {name: 2 * buf.nbytes * sweeps / float(np.median(seconds[name])) / 1e9 for name in streams}
    base = n / float(np.median(seconds["one replica"]))
    rows = []
    for name, (_, _, replicas) in variants.items():
        rate = replicas * n / float(np.median(seconds[name]))
        rows.append(
            {
                "variant": name,
                "replicas": replicas,
                "samples_per_second": rate,
                "vs_one_replica": rate / base,
                "weight_traffic_gb_per_s": rate * rewritten / 1e9,
                "seconds": seconds[name],
            }
        )
    doc = {
        "kind": "jbatch.replica_cores",
        "batch_size": 1,
        "steps_per_round": n,
        "bytes_rewritten_per_step": rewritten,
        "rows": rows,
        "rewrite_gb_per_s": ceiling,
        "rewrite_bytes": buf.nbytes,
        "rewrite_seconds": {name: seconds[name] for name in streams},
    }
    record = convert(doc | {"metadata": {}}, ReplicaCoresDocument)  # through the results contract
    record.metadata = environment_metadata()
    dump(args.out, record, indent=1)
    print(f"digits MLP, B=1, momentum SGD; a step reads and writes {rewritten / 1e6:.2f} MB of parameters and momentum")
    for r in rows:
        print(
            f"  {r['variant']:55s} {r['samples_per_second'] / 1e3:6.1f}k samples/s  {r['vs_one_replica']:.2f}x  "
            f"{r['weight_traffic_gb_per_s']:.0f} GB/s of weight traffic"
        )
    for name, gbs in ceiling.items():
        print(f"  {name} ({buf.nbytes / 1e6:.1f} MB, x * a + b in place): {gbs:.0f} GB/s")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
