"""Benchmark plumbing: the timing helper really waits for the device, the throughput
report tabulates a recorded pytest-benchmark JSON, and missing peers skip with a reason."""

import json
import sys
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import pytest

from jbatch.engine import timed_call
from jbatch.errors import ConfigError
from jbatch.throughput import bars, markdown, measurements, write_throughput_report

DATA = Path(__file__).parent / "data" / "bench_small.json"
ROOT = Path(__file__).resolve().parent.parent


class _FakeClock:
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now


class _Pending:
    """An "array" whose result takes 5 s of (fake) device time to arrive."""

    def __init__(self, clock):
        self.clock = clock

    def block_until_ready(self):
        self.clock.now += 5.0
        return self


def test_timed_call_reads_the_clock_after_blocking(monkeypatch):
    clock = _FakeClock()
    monkeypatch.setattr(time, "perf_counter", clock)
    out, seconds = timed_call(lambda: _Pending(clock))
    assert seconds == 5.0 and isinstance(out, _Pending)


def test_timed_call_waits_for_a_slow_computation():
    @jax.jit
    def slow(a):
        for _ in range(8):
            a = jnp.tanh(a @ a)
        return a

    a = jnp.ones((768, 768)) / 768
    jax.block_until_ready(slow(a))
    start = time.perf_counter()
    jax.block_until_ready(slow(a))
    full = time.perf_counter() - start
    _, seconds = timed_call(slow, a)
    assert seconds > 0.5 * full  # an unblocked call returns at dispatch, long before this


def test_report_tabulates_a_recorded_run(tmp_path):
    doc = json.loads(DATA.read_text())
    m = measurements(doc)
    scan = next(b for b in doc["benchmarks"] if b["extra_info"]["method"] == "jbatch-scan")
    torch = next(b for b in doc["benchmarks"] if b["extra_info"]["method"] == "torch-eager")
    expected = scan["extra_info"]["samples_per_round"] / scan["stats"]["median"]
    assert m[("digits", "jbatch-scan", 512)]["samples_per_second"] == pytest.approx(expected)
    text = markdown(doc)
    row = next(ln for ln in text.splitlines() if ln.startswith("| jbatch-scan |"))
    assert f"{expected / 1e3:.1f}k" in row
    r = expected / (torch["extra_info"]["samples_per_round"] / torch["stats"]["median"])
    assert f"| torch-eager | {r:.2f}x |" in text
    verdicts = {name: verdict for name, _, _, verdict in bars(m)}
    assert verdicts["digits B=1: jbatch-scan / plain-scan (unroll 1)"] == "not measured"  # no B=1 in this run
    written = write_throughput_report(DATA, tmp_path)
    assert [p.name for p in written] == ["benchmark.json", "table.md", "throughput.png"]
    assert (tmp_path / "table.md").read_text() == text


def test_report_refuses_a_file_that_is_not_a_benchmark(tmp_path):
    bad = tmp_path / "x.json"
    bad.write_text('{"benchmarks": []}')
    with pytest.raises(ConfigError, match="not a pytest-benchmark JSON"):
        write_throughput_report(bad, tmp_path / "out")


@pytest.mark.parametrize(("peer", "module"), [("torch-eager", "torch"), ("keras-fit", "keras")])
def test_missing_peer_skips_with_a_reason(peer, module, monkeypatch):
    from bench.peers import PEERS

    monkeypatch.setitem(sys.modules, module, None)  # as if it were not installed
    import numpy as np

    from jbatch.benchmark import Workload

    wl = Workload("t", (4, 3, 2), np.zeros((8, 4), np.float32), np.zeros(8, np.int32))
    with pytest.raises(pytest.skip.Exception, match=r"peer: pip install -e '\.\[peers\]'"):
        PEERS[peer](wl, 4, 8)


def test_mfu_bars_divide_by_the_session_peak_and_by_the_peak_around_the_benchmark():
    doc = json.loads(DATA.read_text())
    wide = json.loads(json.dumps(doc["benchmarks"][0]))  # a jbatch-scan entry, turned into a wide one
    e = wide["extra_info"]
    e.update(workload="wide", batch_size=2048, flops_per_example=1e6, matmul_peak_gflops_session=200.0,
             matmul_peak_gflops_before=80.0, matmul_peak_gflops_now=100.0)  # fmt: skip
    doc["benchmarks"].append(wide)
    m = measurements(doc)
    rate = m[("wide", "jbatch-scan", 2048)]["samples_per_second"]
    got = {name: value for name, value, _, _ in bars(m)}
    session = max(b["extra_info"]["matmul_peak_gflops_session"] for b in doc["benchmarks"])
    assert got["wide B>=512: jbatch-scan MFU vs jax's best matmul rate in the session (worst case)"] == pytest.approx(
        rate * 1e6 / 1e9 / session
    )
    assert got["wide B>=512: jbatch-scan MFU vs the matmul rate measured around it (worst case)"] == pytest.approx(
        rate * 1e6 / 1e9 / 100.0
    )
