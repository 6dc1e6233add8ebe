"""Benchmark plumbing: the timing helper really waits for the device, the throughput
report tabulates a recorded pytest-benchmark JSON, and missing peers skip with a reason."""

import json
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import msgspec
import pytest

from jbatch.core.engine import timed_call
from jbatch.errors import ConfigError
from jbatch.report.throughput import bars, markdown, measurements, write_throughput_report
from jbatch.results import BenchmarkDocument, convert, load

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


def _case(workload, method, b, samples, median, fastest, slowest, flops=1e6, peak=200.0, around=100.0):
    return {
        "name": f"test_throughput[{workload}-{method}-{b}]",
        "extra_info": {
            "workload": workload,
            "method": method,
            "batch_size": b,
            "samples_per_round": samples,
            "samples_per_second": samples / median,
            "compile_seconds": 0.5,
            "flops_per_example": flops,
            "matmul_peak_gflops_session": peak,
            "matmul_peak_gflops_before": around,
            "matmul_peak_gflops_now": around,
        },
        "stats": {"median": median, "min": fastest, "max": slowest, "rounds": 5},
    }


def _doc(cases, raw=False):
    doc = {"benchmarks": cases, "machine_info": {"jbatch": {}}, "commit_info": {}, "datetime": "today"}
    return doc if raw else convert(doc, BenchmarkDocument)


def test_report_tabulates_hand_computed_numbers(tmp_path):
    # Numbers chosen so every expected cell is worked out by hand, not by jbatch's formulas:
    # jbatch-scan at B=1: 1000 samples in a median round of 0.5 s = 2.0k samples/s (rounds
    # of 0.4 and 0.8 s: 2.5k and 1.2k); torch-eager: 100 samples in 0.25 s = 400/s, so the
    # ratio is 5.00x and the B=1 bar against torch (>= 10) is missed. Wide B=512: 1,000
    # samples/s of 1e8 FLOPs each = 100 GFLOP/s = 50% of a 200 GFLOP/s peak, and 100% of
    # the 100 GFLOP/s measured around it.
    doc = _doc(
        [
            _case("digits", "jbatch-scan", 1, 1000, 0.5, 0.4, 0.8),
            _case("digits", "torch-eager", 1, 100, 0.25, 0.2, 0.5),
            _case("wide", "jbatch-scan", 512, 1000, 1.0, 1.0, 1.0, flops=1e8),
        ]
    )
    text = markdown(doc)
    assert "| jbatch-scan | 2.0k (1.3k-2.5k) |" in text
    assert "| torch-eager | 400 (200-500) |" in text
    assert "| torch-eager | 5.00x |" in text
    assert "| jbatch-scan | 50% / 0.5s |" in text
    got = {name: (value, verdict) for name, value, _, verdict in bars(measurements(doc))}
    assert got["digits B=1: jbatch-scan / torch-eager"] == (pytest.approx(5.0), "missed")
    assert got["digits B=1: jbatch-scan / flax-nnx-loop"] == (None, "not measured")
    assert got["wide B>=512: jbatch-scan MFU vs jax's best matmul rate in the session (worst case)"] == (
        pytest.approx(0.5),
        "missed",
    )
    assert got["wide B>=512: jbatch-scan MFU vs the matmul rate measured around it (worst case)"] == (
        pytest.approx(1.0),
        "met",
    )
    path = tmp_path / "b.json"
    path.write_text(json.dumps(msgspec.to_builtins(doc)))
    written = write_throughput_report(path, tmp_path / "out")
    assert [p.name for p in written] == ["benchmark.json", "table.md", "throughput.png"]
    assert (tmp_path / "out" / "table.md").read_text() == text


def test_report_refuses_a_file_that_is_not_a_benchmark(tmp_path):
    bad = tmp_path / "x.json"
    bad.write_text('{"benchmarks": []}')
    with pytest.raises(ConfigError, match="not a pytest-benchmark JSON"):
        write_throughput_report(bad, tmp_path / "out")


def _text_case(kind, seconds, **extra):
    e = {
        "kind": kind,
        "workload": "shakespeare-char",
        "batch_size": 12,
        "seconds": seconds,
        "compile_seconds": dict.fromkeys(seconds, 1.5),
    } | extra
    return {"name": f"test_text[{kind}]", "stats": {"median": 1.0}, "extra_info": e}


def test_report_tabulates_the_shakespeare_cases_with_ratios_and_ties(tmp_path):
    """Tokens/s = windows per round x 64 / the median round; each peer's ratio to jbatch comes
    with the interval of the two medians' order-statistic intervals, '(tie)' when it holds 1."""
    jb = [1.0, 1.1, 0.9, 1.0, 1.05, 0.95, 1.0]
    through = _text_case(
        "text-throughput",
        {"jbatch-scan": jb, "flax-nnx-loop": [2 * x for x in jb], "torch-nanogpt": [x + 0.04 for x in jb]},
        samples_per_round=dict.fromkeys(["jbatch-scan", "flax-nnx-loop", "torch-nanogpt"], 1200),
        tokens_per_example=64,
    )
    target = _text_case(
        "text-to-target",
        {"jbatch": [30.0, 31.0, 29.0], "torch-nanogpt": [60.0, 62.0, 58.0]},
        steps_to_target={"jbatch": 1000, "torch-nanogpt": None},
        target=2.0,
        budget=2000,
        every=100,
        curves={"jbatch": [2.5, 2.1, 1.99], "torch-nanogpt": [2.5, 2.1, 1.99]},
    )
    path = tmp_path / "b.json"
    path.write_text(json.dumps(_doc([through, target], raw=True)))
    text = markdown(load(path))
    row = next(line for line in text.splitlines() if line.startswith("| flax-nnx-loop"))
    assert "| 38.4k [34.9k, 42.7k] | 2.00x [" in row and "(tie)" not in row, row  # 1200 x 64 / 2.0 s
    torch_row = next(line for line in text.splitlines() if line.startswith("| torch-nanogpt") and "1.04" in line)
    assert "(tie)" in torch_row  # 4% slower, well inside the rounds' spread
    target_row = next(line for line in text.splitlines() if line.startswith("| torch-nanogpt | missed"))
    assert "| 60 [58, 62] | 2.00x [" in target_row and "3 rounds, the range: below 95% coverage" in text
    paths = write_throughput_report(path, tmp_path / "out")
    assert {p.name for p in paths} == {"benchmark.json", "table.md", "curves.png"}
