"""Several devices and several processes, each in fresh subprocesses so the rest of the
suite keeps its single CPU device: data-parallel equivalence (4 host devices) and a
2-process sweep on loopback whose results are merged into one directory."""

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from jbatch.sweeps.distributed import Processes

ROOT = Path(__file__).resolve().parent.parent


def _env(devices: int | None = None):
    """This process's environment for a fresh one: jbatch importable, XLA's flags those of
    the suite (conftest's optimisation level) and, with ``devices``, that many host devices."""
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    flags = [f for f in env.get("XLA_FLAGS", "").split() if "device_count" not in f]
    if devices:
        flags.append(f"--xla_force_host_platform_device_count={devices}")
    env["XLA_FLAGS"] = " ".join(flags)
    return env


@pytest.mark.slow
def test_data_parallel_on_4_host_devices_equals_one_device():
    proc = subprocess.run(
        [sys.executable, "-m", "tests.parallel_check"],
        cwd=ROOT,
        env=_env(devices=4),
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.count("ok:") == 8


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_two_process_sweep_splits_batch_sizes_and_merges(tmp_path):
    port = _free_port()
    args = [
        "sweep",
        "--quick",
        "--batch-sizes",
        "100,full",
        "--seeds",
        "0",
        "--lrs",
        "0.1,1",
        "--budget-steps",
        "20",
        "--widths",
        "32",
        "--noise-checkpoints",
        "0",
        "--results-dir",
        str(tmp_path),
        "--coordinator",
        f"127.0.0.1:{port}",
        "--num-processes",
        "2",
    ]
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "jbatch", *args, "--process-id", str(i)],
            cwd=ROOT,
            env=_env(),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for i in range(2)
    ]
    outs = []
    try:
        for p in procs:
            outs.append(p.communicate(timeout=300))  # every wait is bounded
    finally:
        for p in procs:
            p.kill()
    for p, (out, err) in zip(procs, outs, strict=True):
        assert p.returncode == 0, out + err
    doc = json.loads((tmp_path / "digits-mlp-sgd-quick" / "sweep.json").read_text())
    assert set(doc["batch_sizes"]) == {"100", "1437"}
    assert set(doc["processes"]) == {"0", "1"}  # both processes' metadata
    by = {b: r["metadata"]["process_count"] for b, r in doc["batch_sizes"].items()}
    assert by == {"100": 2, "1437": 2}
    assert not list((tmp_path / "digits-mlp-sgd-quick" / "parts").glob("*.json"))
    assert "| full-batch | 1437 |" in outs[0][0] and "process 1: done" in outs[1][0]


def test_processes_share_batch_sizes_round_robin():
    sizes = [1, 4, 16, 64, 256, 1437]
    shares = [Processes(i, 3).share(sizes) for i in range(3)]
    assert shares == [[1, 64], [4, 256], [16, 1437]]
    assert sorted(sum(shares, [])) == sizes
    with pytest.raises(ValueError, match="not in"):
        Processes(2, 2)


def test_barrier_waits_for_every_process_of_this_run_and_gives_up_in_time(tmp_path):
    import threading
    import time

    from jbatch.sweeps.distributed import barrier, clear_barriers

    (tmp_path / ".barrier-7-go-1").touch()  # process 1's marker, but from an earlier run
    me = Processes(0, 2, barrier_timeout=0.5, token=8)
    start = time.monotonic()
    with pytest.raises(TimeoutError, match=r"process\(es\) \[1\] did not arrive within 0.5 s"):
        barrier("go", me, tmp_path, poll_s=0.05)
    assert 0.5 <= time.monotonic() - start < 5
    clear_barriers(me, tmp_path)
    assert not (tmp_path / ".barrier-7-go-1").exists() and (tmp_path / ".barrier-8-go-0").exists()
    other = Processes(1, 2, barrier_timeout=5, token=8)
    late = threading.Timer(0.3, lambda: barrier("go2", other, tmp_path, poll_s=0.05))
    late.start()
    barrier("go2", Processes(0, 2, barrier_timeout=5, token=8), tmp_path, poll_s=0.05)  # returns once 1 arrives
    late.join()
