"""The device-count table (``jbatch.report.scaling``) from recorded rows, through the contract."""

from __future__ import annotations

from jbatch.report.scaling import scaling_table
from jbatch.results import convert
from jbatch.results.records import ScalingRow

META = {"device_kind": "cpu", "backend": "cpu", "cpu": "test", "cpu_count": 2, "versions": {"jax": "0"}, "date": "d"}


def _row(mode, devices, batch, rate):
    return convert(
        {
            "mode": mode,
            "devices": devices,
            "global_batch": batch,
            "per_device_batch": batch / devices,
            "workload": "digits",
            "samples_per_second": rate,
            "seconds": [1.0],
            "compile_seconds": 0.1,
            "metadata": META,
        },
        ScalingRow,
    )


def test_table_is_grouped_by_mode_with_speedups_against_one_device():
    rows = [
        _row("fixed global batch", 1, 512, 100e3),
        _row("fixed per-device batch", 1, 128, 50e3),
        _row("fixed global batch", 2, 512, 150e3),
        _row("fixed per-device batch", 2, 256, 40e3),
    ]
    body = [line for line in scaling_table(rows).splitlines() if line.startswith("| fixed")]
    assert body == [
        "| fixed global batch | 1 | 512 | 512 | 100.0k | 1.00x |",
        "| fixed global batch | 2 | 512 | 256 | 150.0k | 1.50x |",
        "| fixed per-device batch | 1 | 128 | 128 | 50.0k | 1.00x |",
        "| fixed per-device batch | 2 | 256 | 128 | 40.0k | 0.80x |",
    ]
