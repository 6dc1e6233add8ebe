"""Training throughput across batch sizes: jbatch next to the tools people use today.

Each benchmark trains on a fixed number of samples per round, blocking on the result;
one warm-up round keeps compilation out of the statistics, and compile time is measured
apart (``extra_info``). Rounds differ in size between methods (a fused epoch is the whole
data set, a Python loop a slice of it), so compare ``extra_info["samples_per_second"]``
(what ``jbatch report --benchmark`` tabulates), not the raw round times.
Run: ``pytest bench --benchmark-only [--full]``.
"""

from __future__ import annotations

import math
import time

import jax
import pytest

from bench.runners import jbatch_epoch, jbatch_step_loop, plain_scan
from bench.workloads import matmul_peak_gflops
from jbatch.analysis.memory import planned
from jbatch.report.throughput import mfu

BATCH_SIZES = (1, 8, 32, 128, 512, 2048, "full")
DEFAULT = {"digits": (1, 32, 512, "full"), "wide": (512, 2048)}  # under 5 minutes here
LOOP_SAMPLES = {"digits": 4096, "wide": 1024}  # per round, for per-batch Python loops
TARGET_SECONDS, MAX_ROUNDS = 2.0, 25  # rounds: enough for ~2 s of timing (noisy shared VM)


def _jbatch(method):
    def make(wl, b, samples):
        if method == "jbatch-scan":
            return jbatch_epoch(wl, b)
        if method == "jbatch-vmap8":
            return jbatch_epoch(wl, b, replicas=8)
        if method == "plain-scan":
            return plain_scan(wl, b)
        return jbatch_step_loop(wl, b, samples)

    return make


def _peer(name):
    def make(wl, b, samples):
        from bench.peers import PEERS

        return PEERS[name](wl, b, samples)

    return make


METHODS = {
    "jbatch-scan": _jbatch("jbatch-scan"),
    "jbatch-step": _jbatch("jbatch-step"),
    "jbatch-vmap8": _jbatch("jbatch-vmap8"),
    "plain-scan": _jbatch("plain-scan"),
    "flax-nnx-loop": _peer("flax-nnx-loop"),
    "flax-nnx-fast": _peer("flax-nnx-fast"),
    "keras-fit": _peer("keras-fit"),
    "torch-eager": _peer("torch-eager"),
    "torch-compile": _peer("torch-compile"),
}
# 8 wide replicas: ~6 s a round; torch.compile: 4-30 s of compilation per batch size here
FULL_ONLY = {("wide", "plain-scan"), ("wide", "jbatch-vmap8"), ("digits", "torch-compile"), ("wide", "torch-compile")}
CASES = [pytest.param(w, m, b, id=f"{w}-{m}-B{b}") for w in ("digits", "wide") for b in BATCH_SIZES for m in METHODS]


@pytest.mark.parametrize(("workload", "method", "batch_size"), CASES)
def test_throughput(benchmark, workloads, matmul_peak, full, workload, method, batch_size):
    if not full and (batch_size not in DEFAULT[workload] or (workload, method) in FULL_ONLY):
        pytest.skip("not in the default grid (use --full)")
    wl = workloads[workload]
    runner = METHODS[method](wl, batch_size, LOOP_SAMPLES[workload])
    benchmark.group = f"{workload} B={batch_size}"
    start = time.perf_counter()
    runner.run()  # the warm-up round: first-call costs stay out of the statistics
    warm = time.perf_counter() - start
    rounds = min(MAX_ROUNDS, max(7 if full else 3, math.ceil(TARGET_SECONDS / max(warm, 1e-3))))
    peak_before = matmul_peak_gflops(repeats=3)  # with peak_now: the peak around these rounds (shared machine)
    benchmark.pedantic(runner.run, rounds=rounds, warmup_rounds=0, iterations=1)
    median = benchmark.stats.stats.median
    samples_per_second = runner.samples / median
    peak_now = matmul_peak_gflops(repeats=3)
    benchmark.extra_info.update(
        workload=workload,
        method=method,
        batch_size=batch_size,
        samples_per_round=runner.samples,
        steps_per_round=runner.steps,
        compile_seconds=runner.compile_seconds,
        samples_per_second=samples_per_second,
        steps_per_second=runner.steps / median,
        flops_per_example=wl.flops_per_example,
        matmul_peak_gflops_session=matmul_peak["gflops"],
        matmul_peak_gflops_before=peak_before,
        matmul_peak_gflops_now=peak_now,
        mfu=mfu(samples_per_second, wl.flops_per_example, max(matmul_peak["gflops"], peak_now)),
        planned_bytes=planned(runner.memory),  # XLA's plan of jbatch's program (None: a peer's)
    )


LM_SIZES = {False: (1, 16, 256), True: (1, 4, 16, 64, 256, 1024)}


@pytest.fixture(scope="session")
def language():
    from bench.runners import make_language_workload

    return make_language_workload()


@pytest.mark.parametrize("method", ["jbatch-scan", "flax-nnx-loop"])
@pytest.mark.parametrize("batch_size", LM_SIZES[True])
def test_transformer_throughput(benchmark, language, matmul_peak, full, method, batch_size):
    """The transformer on the Markov language: tokens/s and MFU per batch size, jbatch's
    scan-fused epoch next to Flax's NNX tutorial loop over the same model and Adam."""
    if batch_size not in LM_SIZES[full]:
        pytest.skip("not in the default grid (use --full)")
    from bench.peers import language_nnx_loop
    from bench.runners import language_epoch

    with jax.numpy_dtype_promotion("standard"):  # Adam's bias correction as users run it (the tests are strict)
        runner = (
            language_epoch(language, batch_size)
            if method == "jbatch-scan"
            else language_nnx_loop(language, batch_size, 2048)
        )
        benchmark.group = f"markov B={batch_size}"
        runner.run()  # warm-up: compiles both programs under this promotion
        benchmark.pedantic(runner.run, rounds=3 if not full else 7, warmup_rounds=0, iterations=1)
    median = benchmark.stats.stats.median
    peak_now = matmul_peak_gflops(repeats=3)
    sps = runner.samples / median
    benchmark.extra_info.update(
        workload="markov",
        method=method,
        batch_size=batch_size,
        samples_per_round=runner.samples,
        steps_per_round=runner.steps,
        compile_seconds=runner.compile_seconds,
        samples_per_second=sps,
        tokens_per_second=sps * language.tokens_per_example,
        planned_bytes=planned(runner.memory),
        tokens_per_example=language.tokens_per_example,
        flops_per_example=language.flops_per_example,
        matmul_peak_gflops_session=matmul_peak["gflops"],
        matmul_peak_gflops_now=peak_now,
        mfu=mfu(sps, language.flops_per_example, max(matmul_peak["gflops"], peak_now)),
    )


def test_the_benchmark_json_carries_the_machine_as_plain_json():
    """pytest-benchmark writes ``machine_info`` with the json module: jbatch's metadata block goes in
    as plain data (a typed record there made every ``--benchmark-json`` run fail at its end)."""
    import json

    from bench.conftest import pytest_benchmark_update_machine_info
    from jbatch.results.records import Metadata

    info: dict = {}
    pytest_benchmark_update_machine_info(None, info)
    again = json.loads(json.dumps(info))
    assert set(again["jbatch"]["peer_versions"]) == {"keras", "torch"}
    assert Metadata(**again["jbatch"]).backend == "cpu"  # the results contract reads it back
