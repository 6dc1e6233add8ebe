"""Tables and a plot of a pytest-benchmark run of ``bench/`` (``jbatch report --benchmark``).

Reads the JSON pytest-benchmark writes (``--benchmark-json``), whose ``extra_info`` jbatch's
benchmarks fill, and writes ``results/throughput/``: samples/s per method x batch size,
jbatch's ratios over every peer, model-FLOP utilisation, compile times, the performance
bars of issue 4 with their verdicts, and a log-log throughput plot.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from jbatch.analysis.stats import excludes, median_interval, ratio_interval
from jbatch.errors import ConfigError
from jbatch.report import table
from jbatch.report.plot import _pyplot, _save
from jbatch.results import BenchmarkDocument, load
from jbatch.store import write_bytes, write_text

JBATCH = "jbatch-scan"
PEERS = ("flax-nnx-loop", "flax-nnx-fast", "keras-fit", "torch-eager", "torch-compile")
ORDER = ("jbatch-scan", "jbatch-step", "jbatch-vmap8", "plain-scan", *PEERS)
B_ORDER = (1, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, "full")
WORKLOADS = ("digits", "wide", "markov")  # markov: the transformer; its samples are 16-token sequences


def mfu(samples_per_second: float, flops_per_example: float, peak_gflops: float) -> float:
    """Model-FLOP utilisation: the model FLOPs a run performs per second over a peak rate.

    Examples:
      >>> mfu(1000.0, 2e6, 4.0)  # 2 GFLOP/s of model work against a 4 GFLOP/s peak
      0.5
    """
    return samples_per_second * flops_per_example / 1e9 / peak_gflops


def load_benchmark(path: str | Path) -> BenchmarkDocument:
    """A pytest-benchmark JSON of ``bench/`` (through the results contract), refused in one
    line when it holds none of jbatch's throughput benchmarks."""
    doc = load(path, BenchmarkDocument)
    rows = [b for b in doc.benchmarks if "method" in b.extra_info or b.extra_info.get("kind") in TEXT_KINDS]
    if not rows:
        raise ConfigError(f"{path} holds no jbatch throughput benchmark (run: pytest bench --benchmark-only)")
    return doc


def measurements(doc: BenchmarkDocument) -> dict[tuple[str, str, Any], dict[str, Any]]:
    """``(workload, method, batch size) -> numbers``; samples/s from the median round, and
    its spread from the fastest and slowest rounds."""
    out = {}
    for b in doc.benchmarks:
        e = b.extra_info
        if "samples_per_second" not in e or "method" not in e or e.get("kind"):  # test_scaling, time to target
            continue
        s = b.stats
        n = e["samples_per_round"]
        out[(e["workload"], e["method"], e["batch_size"])] = {
            "samples_per_second": n / s["median"],
            "fastest": n / s["min"],
            "slowest": n / s["max"],
            "rounds": s["rounds"],
            "compile_seconds": e["compile_seconds"],
            "flops_per_example": e["flops_per_example"],
            "peak": max(e["matmul_peak_gflops_session"], e["matmul_peak_gflops_now"]),
            # measured just before and just after this benchmark's rounds (older runs: after only)
            "adjacent_peak": max(e.get("matmul_peak_gflops_before", 0.0), e["matmul_peak_gflops_now"]),
            "planned_bytes": e.get("planned_bytes"),  # XLA's plan of jbatch's program; None: a peer, an older run
        }
    return out


def session_peak(m: dict) -> float:
    """The best float32 matmul rate jax reached anywhere in the run (GFLOP/s)."""
    return max(v["peak"] for v in m.values())


def _grid(m: dict, workload: str) -> tuple[list[str], list[Any]]:
    methods = [x for x in ORDER if any(k[0] == workload and k[1] == x for k in m)]
    sizes = [b for b in B_ORDER if any(k[0] == workload and k[2] == b for k in m)]
    return methods, sizes


def ratio(m: dict, workload: str, a: str, b: str, size: Any) -> float | None:
    x, y = m.get((workload, a, size)), m.get((workload, b, size))
    return None if x is None or y is None else x["samples_per_second"] / y["samples_per_second"]


def bars(m: dict) -> list[tuple[str, float | None, float, str]]:
    """Issue 4's performance bars: ``(bar, measured, required, verdict)``."""
    peak = session_peak(m)
    out = []
    for peer, need in (("flax-nnx-loop", 10), ("flax-nnx-fast", 2), ("keras-fit", 3), ("torch-eager", 10)):
        out.append((f"digits B=1: jbatch-scan / {peer}", ratio(m, "digits", JBATCH, peer, 1), need))
    out.append(("digits B=1: jbatch-scan / plain-scan (unroll 1)", ratio(m, "digits", JBATCH, "plain-scan", 1), 2))
    worst = None
    for (w, method, size), v in m.items():
        if method != JBATCH:
            continue
        best_peer = max((m[(w, p, size)]["samples_per_second"] for p in PEERS if (w, p, size) in m), default=None)
        if best_peer:
            r = v["samples_per_second"] / best_peer
            worst = r if worst is None else min(worst, r)
    out.append(("every workload and B: jbatch-scan / fastest peer (worst case)", worst, 0.9))
    # the scan over an epoch must never lose to the same step called from Python: compared by
    # their rounds (the scan's fastest round over the step's slowest), so a miss is beyond noise
    steps = [
        v["fastest"] / m[(w, "jbatch-step", size)]["slowest"]
        for (w, method, size), v in m.items()
        if method == JBATCH and (w, "jbatch-step", size) in m
    ]
    out.append(
        (
            "every workload and B: jbatch-scan's fastest round / jbatch-step's slowest (worst case)",
            min(steps) if steps else None,
            1.0,
        )
    )
    wide = [
        v for (w, method, size), v in m.items() if w == "wide" and method == JBATCH and (size == "full" or size >= 512)
    ]
    for name, ref in (
        ("jax's best matmul rate in the session", lambda v: peak),
        ("the matmul rate measured around it", lambda v: v["adjacent_peak"]),
    ):
        worst = [mfu(v["samples_per_second"], v["flops_per_example"], ref(v)) for v in wide]
        out.append((f"wide B>=512: jbatch-scan MFU vs {name} (worst case)", min(worst) if worst else None, 0.85))
    out.append(("digits B=1: vmap over 8 replicas / one replica", ratio(m, "digits", "jbatch-vmap8", JBATCH, 1), 4))
    return [
        (name, got, need, "not measured" if got is None else ("met" if got >= need else "missed"))
        for name, got, need in out
    ]


CONVERGENCE_METHODS = ("jbatch", "flax-nnx-loop", "flax-nnx-fast", "keras-fit", "torch-eager")


def convergence(doc: BenchmarkDocument) -> dict[tuple[str, str, int | None], dict[str, Any]]:
    """``(regime, method, seed) -> numbers`` of the time-to-target cases: each case's rounds
    (all of one seed, so their spread is timing noise), their median with its
    order-statistic interval, the steps it took and jbatch's profile. (A run from before
    the cases had a seed each has seed None: its rounds were different seeds.)"""
    out = {}
    for b in doc.benchmarks:
        e = b.extra_info
        if e.get("kind") != "time-to-target":
            continue
        rounds = b.stats.get("data") or [b.stats["median"]]
        reached = e["reached"] if isinstance(e["reached"], list) else [e["reached"]] * len(rounds)
        out[(e["regime"], e["method"], e.get("seed"))] = {
            "median": float(np.median(rounds)),
            "interval": median_interval(rounds),
            "rounds": len(rounds),
            "reached": all(reached),
            "steps": e["steps_to_target"],
            "batch_size": e["batch_size"],
            "learning_rate": e["learning_rate"],
            "source": e["best_learning_rate_from"],
            "compile_seconds": e["compile_seconds"],
            "profile": e.get("profile"),
        }
    return out


def convergence_section(doc: BenchmarkDocument) -> list[str]:
    """Seconds to target per regime, seed and method, each peer's ratio to jbatch on the same
    seed with its interval, each method's fastest regimes, and jbatch's profile."""
    c = convergence(doc)
    if not c:
        return []
    regimes = sorted({k[0] for k in c}, key=lambda r: min(v["batch_size"] for k, v in c.items() if k[0] == r))
    methods = [m for m in CONVERGENCE_METHODS if any(k[1] == m for k in c)]
    body, apart, tied = [], 0, 0
    for r in regimes:
        for seed in sorted({k[2] for k in c if k[0] == r}, key=lambda x: -1 if x is None else x):
            base = c.get((r, "jbatch", seed))
            some = next(v for k, v in c.items() if k[0] == r and k[2] == seed)
            cells = [
                r,
                str(some["batch_size"]),
                table.num(some["learning_rate"]),
                "-" if seed is None else str(seed),
                "-" if some["steps"] is None or isinstance(some["steps"], list) else str(some["steps"]),
            ]
            for m in methods:
                v = c.get((r, m, seed))
                if v is None:
                    cells.append("-")
                    continue
                text = f"{table.num(v['median'], 3)} {table.interval(*v['interval'])}"
                if not v["reached"]:
                    text += " (missed)"
                if base and m != "jbatch":
                    iv = ratio_interval(v["interval"], base["interval"])
                    differ = excludes(iv, 1.0)
                    apart, tied = apart + differ, tied + (not differ)
                    text += f", {table.ratio(v['median'] / base['median'])} {table.interval(*iv)}"
                    text += "" if differ else " (tie)"
                cells.append(text)
            body.append(cells)
    fastest = []
    for m in methods:
        done = {}
        for r in regimes:
            cases = [v for k, v in c.items() if k[0] == r and k[1] == m]
            if cases and all(v["reached"] for v in cases):  # the seeds' times added: every seed counts
                done[r] = (
                    sum(v["median"] for v in cases),
                    sum(v["interval"][0] for v in cases),
                    sum(v["interval"][1] for v in cases),
                )
        if done:
            best = min(done, key=lambda r: done[r][0])
            fastest.append(f"{m}: {', '.join(r for r in done if done[r][1] <= done[best][2])}")
    source = next(iter(c.values()))["source"]
    lines = [
        "## Time to target (digits MLP, plain SGD, 95% test accuracy)",
        "",
        *table.markdown(["regime", "B", "LR", "seed", "steps", *methods], body),
        "",
        "Seconds from fresh weights to the target: the median of a case's rounds (every round the same seed, so "
        "the interval, of order statistics, covers timing noise within this run) and, for a peer, its ratio to "
        "jbatch on the same seed (the same steps), with the ratio's interval; '(tie)' when that interval holds 1 "
        f"({apart} ratios apart, {tied} tied). Learning rates: each regime's best in " + source + ". Batches are "
        "cut before the rounds for every method; compilation is before the rounds. Fastest regimes per method "
        "(the seeds' times added; intervals overlapping the fastest): " + "; ".join(fastest) + ".",
        "",
    ]
    return lines + _profile_section(c, regimes)


def _profile_section(c: dict, regimes: list[str]) -> list[str]:
    """jbatch's time to target as one compiled program against the same schedule in the
    sweep's form (a call per chunk, an evaluation call and a host sync per mark)."""
    body = []
    for r in regimes:
        for (reg, m, seed), v in sorted(c.items(), key=lambda kv: str(kv[0])):
            p = v.get("profile")
            if reg != r or m != "jbatch" or not p:
                continue
            body.append(
                [
                    r,
                    str(seed),
                    table.num(v["median"], 3),
                    table.num(p["wall"], 3),
                    table.num(p["train"], 3),
                    table.num(p["evaluate"], 3),
                    table.num(p["rest"], 3),
                    str(p["calls"]),
                    table.ratio(p["wall"] / v["median"]),
                ]
            )
    if not body:
        return []
    return [
        "### jbatch's time to target: where the time goes",
        "",
        *table.markdown(
            [
                "regime",
                "seed",
                "one program (median)",
                "chunked: wall",
                "train",
                "evaluate",
                "rest (dispatch, syncs)",
                "calls",
                "chunked / one program",
            ],
            body,
        ),
        "",
        "One program: the whole schedule (train to the next mark, evaluate, stop at the target) in one "
        "`lax.while_loop`, one dispatch and one host sync. Chunked: the same steps and evaluations as the sweep "
        "runs them, a compiled call per chunk and per evaluation with a host sync after each evaluation, timed "
        "around blocking calls (one run, after the rounds).",
        "",
    ]


TEXT_KINDS = ("text-throughput", "text-to-target")  # bench/test_shakespeare.py
TEXT_JBATCH = ("jbatch-scan", "jbatch")


def text_section(doc: BenchmarkDocument) -> list[str]:
    """nanoGPT's setting on Shakespeare (``bench/test_shakespeare.py``): per method, tokens/s
    and seconds to the validation target from interleaved rounds (median, order-statistic
    interval), and each peer's ratio to jbatch with its interval; '(tie)' when it holds 1."""
    lines = []
    for b in doc.benchmarks:
        e = b.extra_info
        if e.get("kind") not in TEXT_KINDS:
            continue
        seconds = {m: np.asarray(v, float) for m, v in e["seconds"].items()}
        base = next((m for m in TEXT_JBATCH if m in seconds), None)
        rows = []
        for m, v in seconds.items():
            iv = median_interval(v)
            if e["kind"] == "text-throughput":
                scale = e["samples_per_round"][m] * e["tokens_per_example"]
                value, shown = scale / float(np.median(v)), (scale / iv[1], scale / iv[0])
            else:
                value, shown = float(np.median(v)), iv
            cells = [
                m,
                f"{table.rate(value)} [{table.rate(shown[0])}, {table.rate(shown[1])}]"
                if e["kind"] == "text-throughput"
                else f"{table.num(value, 3)} {table.interval(*shown)}",
            ]
            if e["kind"] == "text-to-target":
                cells.insert(1, "missed" if e["steps_to_target"][m] is None else str(e["steps_to_target"][m]))
            if base and m != base:
                r = ratio_interval(iv, median_interval(seconds[base]))
                text = f"{table.ratio(float(np.median(v)) / float(np.median(seconds[base])))} {table.interval(*r)}"
                cells.append(text + ("" if excludes(r, 1.0) else " (tie)"))
            else:
                cells.append("1x")
            cells.append(table.num(e["compile_seconds"][m], 3))
            rows.append(cells)
        n = len(next(iter(seconds.values())))
        coverage = f"{n} rounds" + (", the range: below 95% coverage" if n < 6 else "")
        if e["kind"] == "text-throughput":
            lines += [
                f"## Shakespeare, nanoGPT's CPU setting (B = {e['batch_size']} windows of "
                f"{e['tokens_per_example']} characters): training tokens/s",
                "",
                *table.markdown(["method", "tokens/s [interval]", f"seconds / {base}'s [interval]", "compile s"], rows),
                "",
                f"Median of {coverage} (interleaved, a new order each round), after a warm-up round.",
                "",
            ]
        else:
            lines += [
                f"## Shakespeare, nanoGPT's CPU setting: seconds to validation loss {e['target']}",
                "",
                *table.markdown(["method", "steps", "seconds [interval]", f"/ {base}'s [interval]", "compile s"], rows),
                "",
                f"From fresh weights (the same for every method) in the same batches of B = {e['batch_size']}, "
                f"the {e['budget']}-step schedule, the validation windows evaluated every {e['every']} steps; "
                f"median of {coverage}, each the same seed (the spread is timing).",
                "",
            ]
    return lines


def memory_rows(m: dict, workload: str, methods: list[str], sizes: list[Any]) -> list[str]:
    """XLA's planned memory (MiB) of jbatch's compiled programs per batch size (``analysis.memory``;
    peers compile their own way and record none); nothing for a run from before it was recorded."""
    rows = []
    for method in methods:
        planned = [(m.get((workload, method, b)) or {}).get("planned_bytes") for b in sizes]
        if any(v is not None for v in planned):
            rows.append([method, *("-" if v is None else table.num(v / 2**20, 3) for v in planned)])
    if not rows:
        return []
    return [
        f"### {workload}: XLA's planned memory of jbatch's programs (MiB: arguments + outputs + temporaries - aliased)",
        "",
        *table.markdown(["method", *(f"B={b}" for b in sizes)], rows),
        "",
    ]


def markdown(doc: BenchmarkDocument) -> str:
    m = measurements(doc)
    if not m:
        return "# Training throughput\n\n" + "\n".join(convergence_section(doc) + text_section(doc))
    peak = session_peak(m)
    meta = doc.machine_info.jbatch
    lines = ["# Training throughput", ""]
    for workload in WORKLOADS:
        methods, sizes = _grid(m, workload)
        if not methods:
            continue
        fpe = next(v["flops_per_example"] for k, v in m.items() if k[0] == workload)
        lines += [f"## {workload}: samples/s (median round; fastest-slowest round)", ""]
        rows = []
        for method in methods:
            cells = [method]
            for b in sizes:
                v = m.get((workload, method, b))
                spread = "" if v is None else f" ({table.rate(v['slowest'])}-{table.rate(v['fastest'])})"
                cells.append("-" if v is None else f"{table.rate(v['samples_per_second'])}{spread}")
            rows.append(cells)
        lines += table.markdown(["method", *(f"B={b}" for b in sizes)], rows) + [""]
        lines += [f"### {workload}: jbatch-scan / other method (same run)", ""]
        others = [x for x in methods if x != JBATCH]
        rows = [[other] + [table.ratio(ratio(m, workload, JBATCH, other, b)) for b in sizes] for other in others]
        lines += table.markdown(["over", *(f"B={b}" for b in sizes)], rows) + [""]
        lines += [
            f"### {workload}: model-FLOP utilisation ({fpe / 1e6:.2f} MFLOP per example, "
            f"peak {peak:.0f} GFLOP/s) and compile seconds",
            "",
        ]
        rows = []
        for method in methods:
            cells = [method]
            for b in sizes:
                v = m.get((workload, method, b))
                util = None if v is None else mfu(v["samples_per_second"], fpe, peak)
                cells.append("-" if v is None else f"{table.percent(util)} / {table.num(v['compile_seconds'], 3)}s")
            rows.append(cells)
        lines += table.markdown(["method", *(f"B={b}" for b in sizes)], rows) + [""]
        lines += memory_rows(m, workload, methods, sizes)
    lines += convergence_section(doc)
    lines += text_section(doc)
    lines += ["## Performance bars (issue 4)", ""]
    rows = [[name, table.num(got, 3), f">= {table.num(need)}", verdict] for name, got, need, verdict in bars(m)]
    lines += table.markdown(["bar", "measured", "required", "verdict"], rows) + [""]
    lines += [
        "Samples/s = samples per round / round time; every round blocks on its result, one warm-up round is "
        "excluded, compile time is measured apart. Fused epochs cover the whole data set per round, Python loops "
        "a slice (4,096 digits / 1,024 wide samples, or one batch). MFU = samples/s x model FLOPs per example / "
        "the best float32 matmul rate jax reached in this run (2048^3, measured at the start and around each "
        "benchmark); the second MFU bar divides by the rate measured just before and after the benchmark's own "
        "rounds instead, which cancels slow phases of a shared machine. All numbers come from one pytest-benchmark "
        "run: compare within it, as ratios.",
        f"Measured on {meta.device_kind} ({meta.backend}), CPU {meta.cpu}, "
        f"{meta.cpu_count} cores, jax {meta.versions.get('jax')}, "
        f"peers {meta.peer_versions}, {doc.datetime}, commit "
        f"{str(doc.commit_info.get('id'))[:10]}.",
    ]
    return "\n".join(lines) + "\n"


def plot(doc: BenchmarkDocument, path: Path) -> Path:
    plt = _pyplot()
    m = measurements(doc)
    fig, axes = plt.subplots(1, 3, figsize=(17, 4.5))
    for ax, workload in zip(axes, WORKLOADS, strict=True):
        methods, sizes = _grid(m, workload)
        n = {"digits": 16384, "wide": 8192, "markov": 4096}[workload]
        for method in methods:
            i = ORDER.index(method)  # one colour per method in both panels
            pts = [
                (n if b == "full" else b, m[(workload, method, b)]["samples_per_second"])
                for b in sizes
                if (workload, method, b) in m
            ]
            if pts:
                ax.plot(*zip(*pts, strict=True), "o-", color=f"C{i}", label=method, lw=2 if method == JBATCH else 1)
        if not methods:
            ax.set_axis_off()
            continue
        kind = "transformer" if workload == "markov" else "MLP"
        ax.set(xscale="log", yscale="log", xlabel="batch size", ylabel="samples / s", title=f"{workload} {kind}")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=7)
    return _save(fig, path)


def write_throughput_report(benchmark_json: str | Path, out: str | Path) -> list[Path]:
    """Writes ``out/table.md``, ``out/throughput.png`` and a copy of the JSON they came from."""
    doc = load_benchmark(benchmark_json)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    copy = out / "benchmark.json"
    if Path(benchmark_json).resolve() != copy.resolve():
        write_bytes(copy, Path(benchmark_json).read_bytes())
    paths = [copy, write_text(out / "table.md", markdown(doc))]
    if measurements(doc):
        paths.append(plot(doc, out / "throughput.png"))
    if any(b.extra_info.get("kind") == "text-to-target" for b in doc.benchmarks):
        paths.append(text_curves(doc, out / "curves.png"))
    return paths


def text_curves(doc: BenchmarkDocument, path: Path) -> Path:
    """Each method's validation-loss curve in the Shakespeare time-to-target case (one model
    trained three ways: the curves lie on one another)."""
    plt = _pyplot()
    e = next(b.extra_info for b in doc.benchmarks if b.extra_info.get("kind") == "text-to-target")
    fig, ax = plt.subplots(figsize=(6, 4))
    for i, (m, curve) in enumerate(e["curves"].items()):
        steps = [e["every"] * (k + 1) for k in range(len(curve))]
        ax.plot(steps, curve, "o-" if i == 0 else "x--", label=m, ms=4)
    ax.axhline(e["target"], color="gray", lw=0.8, ls=":")
    ax.set(
        xlabel=f"step (B = {e['batch_size']})",
        ylabel="validation loss (nats / character)",
        title="Shakespeare, nanoGPT's CPU setting",
    )
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8)
    return _save(fig, path)
