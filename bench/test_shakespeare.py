"""nanoGPT's CPU setting on Shakespeare (context 64, batch 12, 4 layers, 4 heads, width 128,
AdamW with warm-up and cosine decay): jbatch next to Flax's NNX tutorial loop and nanoGPT's
own loop in PyTorch (``bench/nanogpt.py``), all three from the same initial weights in the
same batches. The text is fetched once (``jbatch.workloads.shakespeare``).

Each test builds and compiles every method first, then times them in interleaved rounds (a
new random order each round, so that their ratios share the machine's state) and keeps every
round in ``extra_info`` (the pytest-benchmark statistics are of whole rounds):

- ``test_nanogpt_throughput``: training tokens/s on the first 1,200 windows (100 steps a
  method a round), after one warm-up round; compile time apart.
- ``test_nanogpt_to_target``: seconds from fresh weights to a validation loss of
  ``TextCase.target`` in the 2,000-step run, the validation windows evaluated every 100
  steps; every round is the same seed, so a method's spread is timing noise, and each
  method's curve is kept (they train one model: the curves agree to float rounding).

``jbatch report --benchmark`` tabulates both. Run:
``pytest bench/test_shakespeare.py --benchmark-only --shakespeare --benchmark-json=out.json``
(without ``--shakespeare`` they are skipped: ``pytest bench --benchmark-only`` stays minutes).
"""

from __future__ import annotations

import dataclasses
import time

import numpy as np
import pytest

from bench.nanogpt import TO_TARGET, NanoGPTLoop, TextCase, jbatch_text_epoch, text_workload

BATCH, ROWS = 12, 1200
THROUGHPUT_ROUNDS, TARGET_ROUNDS = 7, 3  # 7: a 95% order-statistic interval of a median; 3 rounds of ~2 min
METHODS = ("jbatch-scan", "flax-nnx-loop", "torch-nanogpt")


@pytest.fixture(scope="module")
def shakespeare():
    return text_workload("shakespeare-char:64:24000", "nanogpt-cpu")


def _available(methods):
    try:
        import torch  # noqa: F401
    except ImportError:
        return [m for m in methods if "torch" not in m]
    return list(methods)


def _runner(method, wl):
    if method == "jbatch-scan":
        return jbatch_text_epoch(wl, BATCH)
    if method == "flax-nnx-loop":
        from bench.nanogpt import _tx
        from bench.peers import _nnx_tutorial_loop

        return _nnx_tutorial_loop(wl, BATCH, wl.num_examples, _tx(wl.num_examples // BATCH))[0]
    return NanoGPTLoop(wl, BATCH, wl.num_examples // BATCH).runner()


def test_nanogpt_throughput(benchmark, shakespeare):
    wl = dataclasses.replace(shakespeare, x=shakespeare.x[:ROWS], y=shakespeare.y[:ROWS])
    runners = {m: _runner(m, wl) for m in _available(METHODS)}
    for r in runners.values():
        r.run()  # warm-up
    seconds = {m: [] for m in runners}
    rng = np.random.default_rng(0)

    def one_round():
        for m in rng.permutation(list(runners)):
            start = time.perf_counter()
            runners[m].run()  # blocks on its result
            seconds[m].append(time.perf_counter() - start)

    benchmark.group = "shakespeare-char nanogpt-cpu B=12: one interleaved round of every method"
    benchmark.pedantic(one_round, rounds=THROUGHPUT_ROUNDS, warmup_rounds=0, iterations=1)
    benchmark.extra_info.update(
        kind="text-throughput",
        workload="shakespeare-char",
        model="nanogpt-cpu",
        batch_size=BATCH,
        tokens_per_example=wl.tokens_per_example,
        seconds=seconds,
        samples_per_round={m: r.samples for m, r in runners.items()},
        compile_seconds={m: r.compile_seconds for m, r in runners.items()},
    )


def test_nanogpt_to_target(benchmark, shakespeare):
    c = TextCase()
    runners = {m: TO_TARGET[m](shakespeare, c) for m in _available(TO_TARGET)}
    seconds, results = {m: [] for m in runners}, {m: [] for m in runners}
    rng = np.random.default_rng(0)

    def one_round():
        for m in rng.permutation(list(runners)):
            state = runners[m].setup()  # fresh weights, untimed
            start = time.perf_counter()
            results[m].append(runners[m].run(state))
            seconds[m].append(time.perf_counter() - start)

    benchmark.group = f"shakespeare-char nanogpt-cpu to validation loss {c.target}: one interleaved round"
    benchmark.pedantic(one_round, rounds=TARGET_ROUNDS, warmup_rounds=0, iterations=1)
    benchmark.extra_info.update(
        kind="text-to-target",
        workload="shakespeare-char",
        model="nanogpt-cpu",
        batch_size=c.batch_size,
        target=c.target,
        budget=c.budget,
        every=c.every,
        seconds=seconds,
        steps_to_target={m: r[0]["steps"] for m, r in results.items()},
        curves={m: r[0]["curve"] for m, r in results.items()},
        compile_seconds={m: r.compile_seconds for m, r in runners.items()},
    )
    for m, r in results.items():
        assert len({x["steps"] for x in r}) == 1, f"{m}: rounds of one seed reached the target at different steps"
