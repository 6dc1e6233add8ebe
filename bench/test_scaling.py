"""Data-parallel throughput on this process's devices. A process sees one CPU device
unless started with ``XLA_FLAGS=--xla_force_host_platform_device_count=4``; counts it
does not have skip. ``python -m bench.scaling`` measures every count, each in its own
process; its bad input is refused before any worker starts (plain tests, not benchmarks)."""

from __future__ import annotations

import jax
import pytest

from bench.scaling import main, measure, sharded_epoch
from jbatch.errors import ConfigError


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
        devices=devices,
        global_batch=global_batch,
        mode=mode,
        compile_seconds=runner.compile_seconds,
        samples_per_second=runner.samples / benchmark.stats.stats.median,
    )


@pytest.mark.parametrize(
    ("devices", "batch", "rounds", "message"),
    [
        ([0, 2], 512, 3, "device counts must be positive"),
        ([1, 2], 0, 3, "global batch must be >= 1"),
        ([1], 512, 0, "rounds must be >= 1"),
    ],
)
def test_bad_scaling_input_is_refused_before_any_worker(tmp_path, devices, batch, rounds, message):
    with pytest.raises(ConfigError, match=message):
        measure(devices, batch, 128, "digits", rounds, tmp_path)
    assert not list(tmp_path.iterdir())


def test_scaling_command_bad_input_is_one_line_exit_2(tmp_path, capsys):
    assert main(["--devices", "0", "--out", str(tmp_path)]) == 2
    assert capsys.readouterr().err.strip() == "bench.scaling: error: device counts must be positive integers, got [0]"
