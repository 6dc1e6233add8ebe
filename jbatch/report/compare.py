"""``jbatch compare A B [C ...]``: sweeps (or throughput benchmark runs) of the same workload
side by side, e.g. CPU vs GPU, two jax versions, before and after a change.

Each run is a column group; per batch size: steps to target, seconds to target and
samples/s, and the ratio of seconds to the first run with its interval. Two numbers are
called different only when their 95% intervals do not overlap. Runs of different
workloads or targets are refused, naming the fields that differ; devices, versions and
commits are what a comparison is for, and head the table.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Any

import numpy as np

from jbatch.analysis.stats import excludes, mean_interval, median_interval, product_interval, ratio_interval
from jbatch.analysis.summary import best_steps, result_metadata, summarize
from jbatch.errors import ConfigError
from jbatch.report import table
from jbatch.report.plot import _axes, _pyplot, _save
from jbatch.report.throughput import load_benchmark
from jbatch.results import SWEEP, Metadata, SweepDocument, differences, read_sweep
from jbatch.store import write_bytes, write_text


def _kind(path: Path) -> str:
    if path.is_dir() and (path / SWEEP).exists():
        return "sweep"
    if path.is_file() and path.suffix == ".json":
        return "benchmark"
    raise ConfigError(f"{path} is neither a sweep directory (with {SWEEP}) nor a benchmark JSON file")


def _header(name: str, meta: Metadata) -> str:
    return (
        f"`{name}`: {meta.device_kind} ({meta.backend}), CPU {meta.cpu}, jax {meta.versions.get('jax')}, "
        f"{meta.date}, commit {str(meta.commit.id)[:10]}{' (dirty)' if meta.commit.dirty else ''}"
    )


def _latest(doc: SweepDocument) -> Metadata:
    """The metadata of the sweep's latest batch-size result (a ``--force``d sweep keeps its
    document's first metadata; each result records its own)."""
    return max((result_metadata(doc, r) for r in doc.batch_sizes.values()), key=lambda m: m.date, default=doc.metadata)


def _setting(doc: SweepDocument, key: str) -> Any:
    return doc.num_train if key == "num_train" else doc.config.flat()[key]


def compare_sweeps(directories: list[Path]) -> tuple[list[str], list[list[Any]], list[str], dict]:
    """Header lines, CSV rows, Markdown lines and plot data of sweeps of one workload (its
    ``results.differences``, target included) and way of cutting batches."""
    docs = [read_sweep(d) for d in directories]
    first = docs[0]
    for d, doc in zip(directories[1:], docs[1:], strict=True):
        fields = differences(first, doc)
        if first.config.training.remainder != doc.config.training.remainder:
            fields.append("remainder")
        if fields:
            detail = "; ".join(f"{f}: {_setting(first, f)!r} vs {_setting(doc, f)!r}" for f in fields)
            raise ConfigError(f"{directories[0]} and {d} are not the same workload ({detail}); compare refuses")

    def step_interval(doc: SweepDocument, b: int) -> list[float] | None:
        timing = doc.result(b).timing
        return timing.seconds_per_step_interval if timing else None

    rows = [
        {
            s["row"]["batch_size"]: s["row"]
            | {"step_interval": step_interval(doc, s["row"]["batch_size"]), "seed_steps": best_steps(s)}
            for s in summarize(doc)
        }
        for doc in docs
    ]
    common = set.intersection(*(set(r) for r in rows))
    sizes = sorted(common)
    if not sizes:
        raise ConfigError("these sweeps have no batch size in common")
    only = {i: sorted(set(r) - common) for i, r in enumerate(rows) if set(r) - common}
    header = ["B"]
    for i in range(len(directories)):
        header += [f"steps [{i}]", f"seconds [{i}]", f"samples/s [{i}]"] + ([] if i == 0 else [f"ratio [{i}/0]"])
    md, out, plot = [], [], {"sizes": sizes, "runs": [], "only": only}
    for i in range(len(docs)):
        plot["runs"].append(
            {
                "name": directories[i].name or str(directories[i]),
                "steps": [rows[i][b]["steps_to_target"]["mean"] for b in sizes],
                "seconds": [rows[i][b]["seconds_to_target"]["mean"] for b in sizes],
            }
        )
    for b in sizes:
        cells, line = [str(b)], [b]
        base = rows[0][b]
        for i, r in enumerate(row[b] for row in rows):
            st, sec, iv = r["steps_to_target"], r["seconds_to_target"], r["seconds_to_target_interval"]
            cells += [
                table.spread(st["mean"], st["std"], st["n"]) if st["n"] else "not reached",
                (table.num(sec["mean"], 3) + (f" {table.interval(*iv)}" if iv else "")) if sec["n"] else "-",
                table.rate(r["samples_per_second"]),
            ]
            line += [st["mean"], sec["mean"], *(iv or [None, None]), r["samples_per_second"]]
            if i:
                if sec["n"] and base["seconds_to_target"]["n"] and r["step_interval"] and base["step_interval"]:
                    # Steps to target vary with the seeds (and with rounding: vmap and lax.map sum in another order,
                    # CPU and accelerators group replicas differently), so their ratio carries the seeds' intervals;
                    # seconds per step carry the timing rounds' intervals, which cover one run each.
                    steps_iv = ratio_interval(
                        mean_interval(r["seed_steps"], log=True), mean_interval(base["seed_steps"], log=True)
                    )
                    riv = product_interval(
                        steps_iv, ratio_interval(tuple(r["step_interval"]), tuple(base["step_interval"]))
                    )
                    ratio = sec["mean"] / base["seconds_to_target"]["mean"]
                    tell = (
                        "apart"
                        if excludes(riv, 1.0) and excludes(steps_iv, 1.0)
                        else "undecided (timing, one run each)"
                        if excludes(riv, 1.0)
                        else "tie"
                    )
                    cells.append(f"{table.ratio(ratio)} {table.interval(*riv)} {tell}")
                    line += [ratio, *riv, tell]
                else:
                    cells.append("-")
                    line += [None, None, None, None]
        md.append(cells)
        out.append(line)
    heads = [_header(f"[{i}] {d}", _latest(doc)) for i, (d, doc) in enumerate(zip(directories, docs, strict=True))]
    csv_header = ["batch_size"]
    for i in range(len(docs)):
        csv_header += [f"steps_{i}", f"seconds_{i}", f"seconds_low_{i}", f"seconds_high_{i}", f"samples_per_second_{i}"]
        if i:
            csv_header += [f"ratio_{i}", f"ratio_low_{i}", f"ratio_high_{i}", f"tell_{i}"]
    lines = table.markdown(header, md)
    for i, sizes_i in only.items():
        lines.append(f"\nOnly in [{i}]: B = {', '.join(map(str, sizes_i))} (not compared).")
    return heads, [csv_header, *out], lines, plot


def compare_benchmarks(paths: list[Path]) -> tuple[list[str], list[list[Any]], list[str], dict]:
    """The same for pytest-benchmark JSON files of ``bench/``: samples/s per case, medians
    with the order-statistic interval of their rounds, ratios to the first file."""

    runs = []
    for p in paths:
        doc = load_benchmark(p)
        cases = {}
        for b in doc.benchmarks:
            e = b.extra_info
            if "samples_per_round" not in e or "method" not in e:
                continue
            rounds = b.stats.get("data") or [b.stats["median"]]
            lo, hi = median_interval(rounds)
            n = e["samples_per_round"]
            cases[(e["workload"], e["method"], str(e["batch_size"]))] = (n / float(np.median(rounds)), (n / hi, n / lo))
        runs.append((doc, cases))
    common = sorted(set.intersection(*(set(c) for _, c in runs)))
    if not common:
        raise ConfigError("these benchmark files have no (workload, method, batch size) case in common")
    header = ["workload", "method", "B"] + [f"samples/s [{i}]" for i in range(len(runs))]
    header += [f"ratio [{i}/0]" for i in range(1, len(runs))]
    md, out = (
        [],
        [
            [
                "workload",
                "method",
                "batch_size",
                *(f"samples_per_second_{i}" for i in range(len(runs))),
                *(f"ratio_{i}" for i in range(1, len(runs))),
            ]
        ],
    )
    for case in common:
        vals = [cases[case] for _, cases in runs]
        cells = [*case, *(f"{table.rate(v)} {table.interval(*iv)}" for v, iv in vals)]
        ratios = []
        for v, iv in vals[1:]:
            riv = ratio_interval(iv, vals[0][1])
            tell = "undecided (one run each)" if excludes(riv, 1.0) else "tie"
            cells.append(f"{table.ratio(v / vals[0][0])} {table.interval(*riv)} {tell}")
            ratios.append(v / vals[0][0])
        md.append(cells)
        out.append([*case, *(v for v, _ in vals), *ratios])
    heads = [
        _header(f"[{i}] {p}", doc.machine_info.jbatch) for i, (p, (doc, _)) in enumerate(zip(paths, runs, strict=True))
    ]
    return heads, out, table.markdown(header, md), {}


def _plot(plot: dict, path: Path) -> Path:
    plt = _pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    for i, run in enumerate(plot["runs"]):
        for ax, key in zip(axes, ("steps", "seconds"), strict=True):
            pts = [(b, v) for b, v in zip(plot["sizes"], run[key], strict=True) if v is not None]
            if pts:
                ax.plot(*zip(*pts, strict=True), "o-", color=f"C{i}", label=f"[{i}] {run['name']}")
    _axes(axes[0], "batch size B", "steps to target", "steps to target")
    _axes(axes[1], "batch size B", "seconds to target", "seconds to target")
    return _save(fig, path)


def comparison(paths: list[str | Path]) -> tuple[str, list[list[Any]], dict]:
    """The comparison of ``paths`` (sweep directories of one workload, or benchmark files): its
    Markdown, its CSV rows and its plot data (sweeps only; empty for benchmark files)."""
    paths = [Path(p) for p in paths]
    if len(paths) < 2:
        raise ConfigError("compare needs two or more sweep directories or benchmark files")
    kinds = {_kind(p) for p in paths}
    if len(kinds) > 1:
        raise ConfigError("compare needs runs of one kind: all sweep directories or all benchmark files")
    heads, rows, lines, plot = (compare_sweeps if kinds == {"sweep"} else compare_benchmarks)(paths)
    text = (
        "\n".join(
            [
                "# Comparison",
                "",
                *(f"- {h}" for h in heads),
                "",
                *lines,
                "",
                "Intervals are 95%. Seconds to target: the seeds' steps with the timing rounds. A ratio's "
                "interval combines the ratio of the seeds' intervals of steps with that of the single-model "
                "seconds per step, whose timing rounds are interleaved within one run: they cover one run "
                "each, not run-to-run changes of the machine. So two runs are called 'apart' only when that "
                "interval excludes 1 and the steps' interval alone does too; when only timing separates them, "
                "'undecided (timing, one run each)'; else a 'tie'. Benchmark files: the rounds' intervals of "
                "each run, and likewise never 'apart' on timing from one run each.",
            ]
        )
        + "\n"
    )
    return text, rows, plot


def compare(paths: list[str | Path], out: str | Path | None = None, with_csv: bool = False) -> str:
    """The comparison (``comparison``) as Markdown (returned); with ``out``, also written there as
    ``compare.md`` (+ ``compare.csv``, and for sweeps ``compare.png``)."""
    if out is not None and Path(out).exists() and not Path(out).is_dir():
        raise ConfigError(f"--out {out} is a file: compare writes compare.md (and its plot) into a folder; name one")
    text, rows, plot = comparison(paths)
    if out is not None:
        out = Path(out)
        write_text(out / "compare.md", text)
        if with_csv:
            buf = io.StringIO()
            csv.writer(buf, lineterminator="\n").writerows([["" if x is None else x for x in r] for r in rows])
            write_bytes(out / "compare.csv", buf.getvalue().encode())
        if plot:
            _plot(plot, out / "compare.png")
    return text
