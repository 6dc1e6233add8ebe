"""Where a B=1 step's time goes: per-operation (XLA thunk) times of jbatch's scan-fused
epoch on the digits MLP, from a jax.profiler trace. Evidence for the throughput notes.

    python bench/profile_step.py [--replicas K] [--steps 2048] [--xla-defaults]

Tracing adds about a microsecond to every operation, so read the big items, not the
small ones, and compare runs of this script with each other rather than with benchmarks.
"""

from __future__ import annotations

import argparse
import collections
import glob
import gzip
import json
import tempfile

import jax
import jax.numpy as jnp
import optax

from bench.workloads import LEARNING_RATE, MOMENTUM, make_workload
from jbatch.core.batching import epoch_order
from jbatch.core.engine import compile_program, default_compiler_options, fast_unroll
from jbatch.core.epoch import make_epoch
from jbatch.core.loss import softmax_cross_entropy
from jbatch.core.replica import init_replicas, replica_orders
from jbatch.core.step import init_train_state, make_train_step


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--replicas", type=int, default=1)
    p.add_argument("--steps", type=int, default=2048)
    p.add_argument("--xla-defaults", action="store_true", help="XLA's own options and unroll 1")
    args = p.parse_args()
    wl = make_workload("digits")
    n, k = args.steps, args.replicas
    data = (jnp.asarray(wl.x[:n]), jnp.asarray(wl.y[:n]))
    tx = optax.inject_hyperparams(optax.sgd)(learning_rate=LEARNING_RATE, momentum=MOMENTUM)
    options = {} if args.xla_defaults else default_compiler_options()
    epoch = make_epoch(make_train_step(softmax_cross_entropy), n, 1, unroll=1 if args.xla_defaults else fast_unroll(1))
    if k == 1:
        state, order, axes = init_train_state(wl.model(0), tx), jnp.asarray(epoch_order(0, 0, n)), None
    else:
        seeds = list(range(k))
        state = init_replicas(wl.model, tx, seeds, [LEARNING_RATE] * k)
        order, axes = jnp.asarray(replica_orders(seeds, 0, n)), (0, None, 0)
    program = compile_program(
        epoch,
        state,
        data,
        order,
        in_axes=axes,
        donate_argnums=(0,),
        compiler_options=options | {"xla_cpu_enable_xprof_traceme": True},
    )
    state, _ = program(state, data, order)
    jax.block_until_ready(state)
    with tempfile.TemporaryDirectory() as tmp:
        jax.profiler.start_trace(tmp)
        jax.block_until_ready(program(state, data, order))
        jax.profiler.stop_trace()
        trace = sorted(glob.glob(f"{tmp}/**/*.trace.json.gz", recursive=True))[-1]
        events = json.load(gzip.open(trace))["traceEvents"]
    total, count = collections.Counter(), collections.Counter()
    for e in events:
        if e.get("ph") == "X" and not e["name"].startswith(("$", "ThunkExecutor", "Pjit", "end:", "Threadpool")):
            total[e["name"]] += e["dur"]
            count[e["name"]] += 1
    per_step = {name: us / n for name, us in total.items() if count[name] >= n // 4}  # unrolled: n/2 each
    print(
        f"replicas {k}, {n} steps of B=1, {len(per_step)} operations per step, "
        f"{sum(per_step.values()):.1f} us per step in operations (traced)"
    )
    for name, us in sorted(per_step.items(), key=lambda kv: -kv[1])[:12]:
        print(f"  {us:7.2f} us  {name}")


if __name__ == "__main__":
    main()
