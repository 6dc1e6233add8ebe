"""The scaling table from recorded rows, and the scaling command's bad input (no workers run)."""

from __future__ import annotations

import pytest

from jbatch.errors import ConfigError
from jbatch.sweeps.scaling import measure, scaling_table
from tests.helpers import run_cli

META = {"device_kind": "cpu", "backend": "cpu", "cpu": "test", "cpu_count": 2, "versions": {"jax": "0"}, "date": "d"}


def _row(mode, devices, batch, rate):
    return {"mode": mode, "devices": devices, "global_batch": batch, "per_device_batch": batch / devices,
            "workload": "digits", "samples_per_second": rate, "metadata": META}  # fmt: skip


def test_table_is_grouped_by_mode_with_speedups_against_one_device():
    rows = [_row("fixed global batch", 1, 512, 100e3), _row("fixed per-device batch", 1, 128, 50e3),
            _row("fixed global batch", 2, 512, 150e3), _row("fixed per-device batch", 2, 256, 40e3)]  # fmt: skip
    body = [line for line in scaling_table(rows).splitlines() if line.startswith("| fixed")]
    assert body == [
        "| fixed global batch | 1 | 512 | 512 | 100.0k | 1.00x |",
        "| fixed global batch | 2 | 512 | 256 | 150.0k | 1.50x |",
        "| fixed per-device batch | 1 | 128 | 128 | 50.0k | 1.00x |",
        "| fixed per-device batch | 2 | 256 | 128 | 40.0k | 0.80x |",
    ]


@pytest.mark.parametrize(("devices", "batch", "rounds", "message"), [
    ([0, 2], 512, 3, "device counts must be positive"),
    ([1, 2], 0, 3, "global batch must be >= 1"),
    ([1], 512, 0, "rounds must be >= 1"),
])  # fmt: skip
def test_bad_scaling_input_is_refused_before_any_worker(tmp_path, devices, batch, rounds, message):
    with pytest.raises(ConfigError, match=message):
        measure(devices, batch, 128, "digits", rounds, tmp_path)
    assert not list(tmp_path.iterdir())


def test_scaling_command_bad_input_is_one_line_exit_2(tmp_path, capsys):
    code, _, err = run_cli(["scaling", "--devices", "0", "--out", str(tmp_path)], capsys)
    assert code == 2 and err.strip() == "jbatch: error: device counts must be positive integers, got [0]"
