"""Data-parallel throughput on this process's devices. A process sees one CPU device
unless started with ``XLA_FLAGS=--xla_force_host_platform_device_count=4``; counts it
does not have skip. ``jbatch scaling`` measures every count, each in its own process."""

from __future__ import annotations

import jax
import pytest

from jbatch.sweeps.scaling import sharded_epoch


@pytest.mark.parametrize("devices", [1, 2, 4])
@pytest.mark.parametrize(("mode", "batch"), [("global", 512), ("per-device", 128)])
def test_data_parallel_throughput(benchmark, workloads, devices, mode, batch):
    if devices > jax.local_device_count():
        pytest.skip(f"this process has {jax.local_device_count()} device(s)")
    global_batch = batch if mode == "global" else batch * devices
    runner = sharded_epoch(workloads["digits"], global_batch, devices)
    benchmark.group = f"scaling, fixed {mode} batch"
    benchmark.pedantic(runner.run, rounds=3, warmup_rounds=1, iterations=1)
    benchmark.extra_info.update(
        devices=devices, global_batch=global_batch, mode=mode, compile_seconds=runner.compile_seconds,
        samples_per_second=runner.samples / benchmark.stats.stats.median,
    )  # fmt: skip
