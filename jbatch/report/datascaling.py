"""The data-scaling study's table, plot and JSON (``results/data-scaling/``), from its sweeps."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import numpy as np

from jbatch.analysis.datascaling import collect, fits
from jbatch.errors import ConfigError
from jbatch.report import table
from jbatch.report.plot import _pyplot, _save
from jbatch.results import dump
from jbatch.results.records import DataScalingDocument, DataScalingRow, PowerLaw
from jbatch.store import write_bytes, write_text


def verdict(fit: dict[str, PowerLaw]) -> str:
    """Whether the critical batch size grows with the amount of data, by its exponent's interval."""
    f = fit["b_crit"]
    if f.low > 0:
        return f"holds: B_crit grows as N^{f.exponent:.2f} (95% interval [{f.low:.2f}, {f.high:.2f}])"
    if f.high < 0:
        return f"does not hold: B_crit falls as N^{f.exponent:.2f} ([{f.low:.2f}, {f.high:.2f}])"
    return f"not shown: exponent {f.exponent:.2f}, 95% interval [{f.low:.2f}, {f.high:.2f}] includes 0"


def write_study(root: Path) -> list[Path]:
    """``table.md``, ``table.csv``, ``scaling.json`` and ``data_scaling.png`` of ``root``."""
    rows = collect(root)
    if not rows:
        raise ConfigError(f"{root} holds no data-scaling sweep (run: jbatch study data-scaling)")
    laws = fits(rows)
    buf = io.StringIO()
    keys = ["model", "n", "target", "b_crit", "low", "high", "bound", "b_simple", "wall_seconds"]
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(keys)
    w.writerows([["" if getattr(r, k) is None else getattr(r, k) for k in keys] for r in rows])
    written = [
        write_text(root / "table.md", markdown(rows, laws)),
        write_bytes(root / "table.csv", buf.getvalue().encode()),
        dump(root / "scaling.json", DataScalingDocument(rows=rows, fits=laws), indent=1),
    ]
    written.append(_plot(root, rows, laws))
    return written


def markdown(rows: list[DataScalingRow], laws: dict[str, dict[str, PowerLaw]]) -> str:
    """``table.md`` of the study: one row per sweep, each model's power laws and verdict."""
    body = [
        [
            r.model,
            str(r.n),
            table.num(r.target),
            table.num(r.b_crit, 3) + (f" ({r.bound} the range)" if r.bound else ""),
            table.interval(r.low, r.high),
            table.num(r.b_simple, 3),
            table.num(r.wall_seconds, 3),
        ]
        for r in rows
    ]
    lines = [
        "# Critical batch size against the amount of data (MNIST-1D, nested sizes)",
        "",
        *table.markdown(
            ["model", "N", "target test acc", "B_crit", "95% interval", "B_simple near target", "sweep seconds"], body
        ),
        "",
    ]
    for model, f in laws.items():
        line = f"- {model}: {verdict(f)}"
        if "b_simple" in f:
            s = f["b_simple"]
            line += f"; B_simple ∝ N^{s.exponent:.2f} ([{s.low:.2f}, {s.high:.2f}])"
        lines.append(line)
    meta = rows[0].metadata
    lines += [
        "",
        "Each size trains on a class-balanced subset of the next larger one, with one fixed 1,000-sequence "
        "test set; B_crit is the fit of S(B) = S_min (1 + B_crit / B) to each sweep (interval: bootstrap "
        "over the seeds within each batch size); the exponents are least squares on logs, intervals by "
        "parametric bootstrap from those intervals.",
        f"Measured on {meta.device_kind} ({meta.backend}), CPU {meta.cpu}, jax "
        f"{meta.versions.get('jax')}, {meta.date}, commit {str(meta.commit.id)[:10]}.",
    ]
    return "\n".join(lines) + "\n"


def _plot(root: Path, rows: list[DataScalingRow], laws: dict) -> Path:
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6, 4.2))
    for i, model in enumerate(sorted({r.model for r in rows})):
        mine = [r for r in rows if r.model == model and r.b_crit]
        n = np.array([r.n for r in mine], float)
        y = np.array([r.b_crit for r in mine])
        lo, hi = np.array([r.low for r in mine]), np.array([r.high for r in mine])
        ax.errorbar(
            n,
            y,
            yerr=[np.maximum(y - lo, 0), np.maximum(hi - y, 0)],
            fmt="o",
            capsize=3,
            color=f"C{i}",
            label=f"{model}: B_crit (95%)",
        )
        s = [(r.n, r.b_simple) for r in mine if r.b_simple]
        if s:
            ax.plot(*zip(*s, strict=True), "s", mfc="none", color=f"C{i}", label=f"{model}: B_simple near target")
        if model in laws:
            f, grid = laws[model]["b_crit"], np.geomspace(n.min(), n.max(), 50)
            ax.plot(
                grid,
                f.prefactor * grid**f.exponent,
                "-",
                color=f"C{i}",
                lw=1,
                label=f"{model}: B_crit ∝ N^{f.exponent:.2f}",
            )
    ax.set(xlabel="training sequences N", ylabel="batch size", title="MNIST-1D: critical batch size against data")
    if any(r.b_crit for r in rows):
        ax.set(xscale="log", yscale="log")
    else:  # nothing to draw on log axes (every size too small or too short for a fit): say so
        ax.text(
            0.5,
            0.5,
            "no sweep has a B_crit fit (fewer than 3 batch sizes reached the target)",
            transform=ax.transAxes,
            ha="center",
            va="center",
            fontsize=8,
        )
    ax.grid(True, which="both", alpha=0.3)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=7)
    return _save(fig, root / "data_scaling.png")
