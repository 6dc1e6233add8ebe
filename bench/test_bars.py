"""The performance bars as a benchmark run that fails when one is missed (opt-in):

    pytest bench/test_bars.py --bars [--bars-json bars.json]

Every case the bars need (jbatch's scan-fused epoch, the plain-scan baseline and every
installed peer, on the default grid) is built and warmed up once, then timed in
interleaved rounds (round-robin, in a new random order each round) so that the ratios
share the machine's state; the float32 matmul peak is measured between rounds. The bars
are ``jbatch.report.throughput.bars`` of the medians; the test fails listing every missed bar.
"""

from __future__ import annotations

import json
import time

import numpy as np
import pytest

from bench.workloads import matmul_peak_gflops
from jbatch.report.throughput import PEERS, bars

CASES = {"digits": (1, 32, 512, "full"), "wide": (512, 2048)}
B1_ONLY = ("plain-scan", "jbatch-vmap8")  # the bars compare these at digits B=1 only
ROUNDS = 7


def _cases(workloads):
    from bench.test_throughput import LOOP_SAMPLES, METHODS

    out = {}
    for w, sizes in CASES.items():
        for b in sizes:
            for method in ("jbatch-scan", *(p for p in PEERS if p != "torch-compile"), *B1_ONLY):
                if method in B1_ONLY and (w, b) != ("digits", 1):
                    continue
                try:
                    out[(w, method, b)] = METHODS[method](workloads[w], b, LOOP_SAMPLES[w])
                except pytest.skip.Exception:  # a peer that is not installed
                    continue
    return out


def test_performance_bars(request, workloads):
    if not request.config.getoption("--bars"):
        pytest.skip("the performance bars run only with --bars")
    runners = _cases(workloads)
    for r in runners.values():
        r.run()  # warm-up round
    rng = np.random.default_rng(0)
    seconds = {k: [] for k in runners}
    peaks = [matmul_peak_gflops(repeats=5)]
    for _ in range(ROUNDS):
        keys = list(runners)
        for i in rng.permutation(len(keys)):
            start = time.perf_counter()
            runners[keys[i]].run()  # blocks on its result
            seconds[keys[i]].append(time.perf_counter() - start)
        peaks.append(matmul_peak_gflops(repeats=5))
    m = {}
    for k, r in runners.items():
        v = np.asarray(seconds[k])
        m[k] = {
            "samples_per_second": r.samples / float(np.median(v)),
            "fastest": r.samples / v.min(),
            "slowest": r.samples / v.max(),
            "rounds": len(v),
            "compile_seconds": r.compile_seconds,
            "flops_per_example": workloads[k[0]].flops_per_example,
            "peak": max(peaks),
            "adjacent_peak": float(np.median(peaks)),
        }
    verdicts = bars(m)
    path = request.config.getoption("--bars-json")
    if path:
        with open(path, "w") as f:
            json.dump(
                {
                    "bars": verdicts,
                    "seconds": {"/".join(map(str, k)): v for k, v in seconds.items()},
                    "peaks_gflops": peaks,
                },
                f,
                indent=1,
            )
    for name, got, need, verdict in verdicts:
        print(f"{verdict:>12}  {name}: {'-' if got is None else f'{got:.2f}'} (need >= {need:g})")
    missed = [f"{name}: {got:.2f} < {need:g}" for name, got, need, verdict in verdicts if verdict == "missed"]
    assert not missed, "missed performance bars: " + "; ".join(missed)
