"""Throughput against device count, at fixed global batch and at fixed per-device batch:
``python -m bench.scaling [--devices 1,2,4] [--out results/scaling]``.

A process's device count is fixed when JAX starts, so every count runs in a worker
process of its own (``XLA_FLAGS=--xla_force_host_platform_device_count=D`` on CPU; on a
GPU host, the first D GPUs); the driver collects their measurements into
``results/scaling/`` (``scaling.json`` through the results contract, and ``table.md`` by
``jbatch.report.scaling``, which ``jbatch report results/scaling`` regenerates).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import jax
import msgspec
import optax

from bench.workloads import LEARNING_RATE, MOMENTUM, MLPWorkload, Runner, device_data, epoch_runner, make_workload
from jbatch.core.batching import epoch_order, resolve_batch_size
from jbatch.core.engine import fast_unroll
from jbatch.core.epoch import make_epoch
from jbatch.core.loss import softmax_cross_entropy
from jbatch.core.parallel import batch_sharding, data_mesh, padded_width, place
from jbatch.core.step import init_train_state, make_train_step
from jbatch.errors import ConfigError
from jbatch.report.scaling import scaling_table
from jbatch.results import dump
from jbatch.results.records import ScalingDocument, ScalingRow
from jbatch.store import write_text
from jbatch.sweeps.metadata import environment_metadata


def sharded_epoch(wl: MLPWorkload, batch_size: int | str | None, devices: int) -> Runner:
    """jbatch's scan-fused epoch, data parallel over the first ``devices`` local devices
    (``jbatch.core.parallel``): ``batch_size`` is the global batch."""
    n = wl.num_examples
    b = resolve_batch_size(batch_size, n)
    mesh = data_mesh(jax.local_devices()[:devices])
    tx = optax.inject_hyperparams(optax.sgd)(learning_rate=LEARNING_RATE, momentum=MOMENTUM)
    epoch = make_epoch(
        make_train_step(softmax_cross_entropy),
        n,
        b,
        unroll=fast_unroll(b),
        sharding=batch_sharding(mesh),
        width=padded_width(b, mesh),
    )
    state, data = place(init_train_state(wl.model(0), tx), mesh), place(device_data(wl), mesh)
    order = place(epoch_order(0, 0, n), mesh)
    return epoch_runner(epoch, state, data, order, n, b)


def worker(devices: int, batch: int, workload: str, rounds: int) -> dict[str, Any]:
    """In a process with >= ``devices`` local devices: one sharded epoch, timed."""
    if jax.local_device_count() < devices:
        raise ConfigError(f"this process has {jax.local_device_count()} local devices, {devices} asked for")
    runner = sharded_epoch(make_workload(workload), batch, devices)
    runner.run()  # warm-up
    seconds = []
    for _ in range(rounds):
        start = time.perf_counter()
        runner.run()  # blocks on its result
        seconds.append(time.perf_counter() - start)
    median = float(statistics.median(seconds))
    return {
        "devices": devices,
        "global_batch": batch,
        "per_device_batch": batch / devices,
        "workload": workload,
        "samples_per_second": runner.samples / median,
        "seconds": seconds,
        "compile_seconds": runner.compile_seconds,
        "metadata": msgspec.to_builtins(environment_metadata()),
    }


def run_worker(devices: int, batch: int, workload: str, rounds: int, timeout_s: int = 900) -> dict[str, Any]:
    """Runs ``worker`` in a fresh process that sees ``devices`` devices."""
    env = dict(os.environ)
    if jax.default_backend() == "cpu":
        env["XLA_FLAGS"] = f"{env.get('XLA_FLAGS', '')} --xla_force_host_platform_device_count={devices}".strip()
    cmd = [sys.executable, "-m", "bench.scaling", "--worker", str(devices), str(batch), workload, str(rounds)]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout_s)
    if proc.returncode != 0:
        raise ConfigError(f"scaling worker for {devices} devices failed: {proc.stderr.strip().splitlines()[-1:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def check(device_counts: list[int], global_batch: int, per_device_batch: int, rounds: int) -> None:
    """One clear line for input that cannot be measured, before any worker starts."""
    if not device_counts or min(device_counts) < 1:
        raise ConfigError(f"device counts must be positive integers, got {device_counts}")
    for name, value in (("global batch", global_batch), ("per-device batch", per_device_batch), ("rounds", rounds)):
        if value < 1:
            raise ConfigError(f"{name} must be >= 1, got {value}")


def measure(
    device_counts: list[int], global_batch: int, per_device_batch: int, workload: str, rounds: int, out: Path
) -> Path:
    """Both scaling modes for every device count; writes ``out/scaling.json`` and ``table.md``."""
    check(device_counts, global_batch, per_device_batch, rounds)
    rows = []
    for d in device_counts:
        rows.append({"mode": "fixed global batch", **run_worker(d, global_batch, workload, rounds)})
        rows.append({"mode": "fixed per-device batch", **run_worker(d, per_device_batch * d, workload, rounds)})
    records = msgspec.convert(rows, list[ScalingRow])
    dump(Path(out) / "scaling.json", ScalingDocument(rows=records), indent=1)
    return write_text(Path(out) / "table.md", scaling_table(records))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.scaling", description=__doc__.split("\n\n")[0])
    p.add_argument("--devices", default="1,2,4", help="device counts, e.g. 1,2,4")
    p.add_argument("--global-batch", type=int, default=512)
    p.add_argument("--per-device-batch", type=int, default=128)
    p.add_argument("--workload", choices=("digits", "wide"), default="digits")
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--out", type=Path, default=Path("results/scaling"))
    p.add_argument("--worker", nargs=4, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.worker:  # a worker process: devices batch workload rounds
        d, b, w, r = args.worker
        print(json.dumps(worker(int(d), int(b), w, int(r))))
        return 0
    try:
        counts = [int(v) for v in args.devices.split(",") if v.strip()]
        print(
            measure(counts, args.global_batch, args.per_device_batch, args.workload, args.rounds, args.out).read_text()
        )
    except (ConfigError, ValueError) as e:
        print(f"bench.scaling: error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
