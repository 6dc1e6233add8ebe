"""The sweep's PNG plots, drawn from its summaries and curves (matplotlib, no display)."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import numpy as np

from jbatch.analysis.selection import best_replicas, series
from jbatch.analysis.tradeoff import examples_curve as tradeoff_examples
from jbatch.analysis.tradeoff import steps_curve as tradeoff_steps
from jbatch.report.table import interval_text
from jbatch.results import SweepDocument
from jbatch.store import write_bytes


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")  # files only: no display on CI or servers
    import matplotlib.pyplot as plt

    return plt


def _to_target(rows: list[dict[str, Any]], key: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    pts = [(s["row"]["batch_size"], s["row"][key]) for s in rows if s["row"][key]["n"]]
    b = np.array([p[0] for p in pts], float)
    mean = np.array([p[1]["mean"] for p in pts], float)
    std = np.array([p[1]["std"] for p in pts], float)
    return b, mean, std


def _save(fig, path: Path) -> Path:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    _pyplot().close(fig)
    return write_bytes(path, buf.getvalue())


def steps_to_target(directory: Path, rows: list[dict[str, Any]], title: str, fits: list | None = None) -> Path:
    """Steps to target vs batch size, log-log, with the perfect-scaling line S ~ 1/B
    anchored at the smallest batch size (and any fitted curves passed in ``fits``)."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6, 4.2))
    b, mean, std = _to_target(rows, "steps_to_target")
    ax.errorbar(b, mean, yerr=std, marker="o", capsize=3, label="measured (best LR per B)")
    _mark_bounds(ax, rows, "steps_to_target")
    if len(b):
        grid = np.geomspace(b.min(), b.max(), 50)
        ax.plot(grid, mean[0] * b[0] / grid, "k--", lw=1, label="perfect scaling (S ∝ 1/B)")
    for label, xs, ys in fits or []:
        ax.plot(xs, ys, "-", lw=1.5, label=label)
    _axes(ax, "batch size B", "steps to target", title)
    return _save(fig, directory / "steps_to_target.png")


def _mark_bounds(ax, rows: list[dict[str, Any]], key: str) -> None:
    """Rings around the points whose best learning rate sits on an edge of the grid."""
    pts = [(s["row"]["batch_size"], s["row"][key]["mean"]) for s in rows if s["row"]["lr_edge"] and s["row"][key]["n"]]
    if pts:
        ax.plot(*zip(*pts, strict=True), "o", ms=13, mfc="none", mec="C3", label="upper bound: best LR on a grid edge")


def seconds_to_target(directory: Path, rows: list[dict[str, Any]], title: str) -> Path:
    """Seconds to target vs batch size with 95% intervals (seeds' steps x the timing
    rounds); the fastest set (intervals overlapping the fastest one's) filled."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6, 4.2))
    pts = [s["row"] for s in rows if s["row"]["seconds_to_target_interval"]]
    if pts:
        b = np.array([r["batch_size"] for r in pts], float)
        mean = np.array([r["seconds_to_target"]["mean"] for r in pts])
        lo, hi = np.array([r["seconds_to_target_interval"] for r in pts]).T
        ax.errorbar(
            b,
            mean,
            yerr=[mean - lo, hi - mean],
            fmt="o-",
            mfc="white",
            capsize=3,
            color="C1",
            label="steps x single-model s/step, 95% interval",
        )
        best = [i for i, r in enumerate(pts) if r.get("fastest")]
        ax.plot(b[best], mean[best], "o", color="C1", label="fastest set (intervals overlap)")
    _axes(ax, "batch size B", "seconds to target (compile excluded)", title)
    return _save(fig, directory / "seconds_to_target.png")


def loss_curves(directory: Path, doc: SweepDocument, rows: list[dict[str, Any]], title: str) -> Path:
    """Train and test loss vs epoch at each batch size's best learning rate (seed mean, at
    the points where every seed was evaluated). The y axis spans the bulk of the values
    (up to 1.5x their 98th percentile): a spike beyond it is drawn as a triangle on the top
    edge with its value, so one blow-up does not flatten every other curve."""
    plt = _pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2), sharey=True)
    drawn: list[tuple[Any, np.ndarray, np.ndarray, str]] = []
    for i, s in enumerate(rows):
        r = s["row"]
        result = doc.result(r["batch_size"])
        reps = best_replicas(result.replicas, r)
        for ax, key in zip(axes, ("train_loss", "test_loss"), strict=True):
            steps = np.asarray(series(reps[0], key)[0], float)
            values = np.array([[np.nan if v is None else v for v in series(x, key)[1]] for x in reps], float)
            keep = np.all(np.isfinite(values), 0)
            if keep.any():
                epochs, mean = steps[keep] / result.steps_per_epoch, values[:, keep].mean(0)
                ax.plot(
                    epochs,
                    mean,
                    color=f"C{i}",
                    label=f"{r['regime']} B={r['batch_size']} (lr {r['best_learning_rate']:.3g})",
                )
                drawn.append((ax, epochs, mean, f"C{i}"))
    values = np.concatenate([d[2] for d in drawn]) if drawn else np.array([1.0])
    values = values[values > 0]
    top = 1.5 * float(np.percentile(values, 98)) if values.size else 1.0
    for ax, split in zip(axes, ("training loss", "test loss"), strict=True):
        _axes(ax, "epoch", split, f"{title}: {split}")
        ax.set_ylim(float(values.min()) / 1.5 if values.size else 0.1, top)
    for ax, epochs, mean, color in drawn:
        for e, v in zip(epochs[mean > top], mean[mean > top], strict=True):
            ax.plot([e], [top], "^", color=color, ms=8, clip_on=False)
            ax.annotate(f"spike {v:.2g}", (e, top), fontsize=6, xytext=(2, -10), textcoords="offset points")
    if axes[1].get_legend_handles_labels()[0]:
        axes[1].legend(fontsize=7)
    return _save(fig, directory / "loss_curves.png")


def best_lr(directory: Path, rows: list[dict[str, Any]], title: str) -> Path:
    """Best learning rate vs batch size, with linear (lr ∝ B, Goyal et al.) and
    square-root (lr ∝ √B) scaling lines anchored at the smallest batch size."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6, 4.2))
    b = np.array([s["row"]["batch_size"] for s in rows], float)
    lr = np.array([s["row"]["best_learning_rate"] for s in rows], float)
    ax.plot(b, lr, "o-", label="best learning rate")
    for mark, kind in (("v", "grid-low"), ("^", "grid-high"), ("X", "stable-edge")):
        pts = [(s["row"]["batch_size"], s["row"]["best_learning_rate"]) for s in rows if s["row"]["lr_edge"] == kind]
        if pts:
            ax.plot(*zip(*pts, strict=True), mark, ms=10, color="C3", label=f"on the grid's {kind.replace('-', ' ')}")
    grid = np.geomspace(b.min(), b.max(), 50)
    ax.plot(grid, lr[0] * grid / b[0], "k--", lw=1, label="linear scaling (lr ∝ B)")
    ax.plot(grid, lr[0] * np.sqrt(grid / b[0]), "k:", lw=1, label="square-root scaling (lr ∝ √B)")
    ax.set_ylim(lr.min() / 3, lr.max() * 3)
    _axes(ax, "batch size B", "best learning rate", title)
    return _save(fig, directory / "best_lr.png")


def _axes(ax, xlabel: str, ylabel: str, title: str) -> None:
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=10)
    if not any(len(line.get_xdata()) for line in ax.lines):  # nothing to draw (e.g. no batch size reached it)
        ax.text(0.5, 0.5, "no data: nothing reached the target", ha="center", va="center", transform=ax.transAxes)
        return
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.grid(True, which="both", alpha=0.3)
    if ax.get_legend_handles_labels()[0]:  # nothing reached the target: no legend to draw
        ax.legend(fontsize=7)


def tradeoff(directory: Path, rows: list[dict[str, Any]], fit: dict[str, Any] | None, title: str) -> Path:
    """Steps vs examples to target, one point per batch size, with the fitted hyperbola
    ``(S / S_min - 1)(E / E_min - 1) = 1``."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6, 4.2))
    pts = [
        (r["examples_to_target"]["mean"], r["steps_to_target"]["mean"], r["batch_size"])
        for r in (s["row"] for s in rows)
        if r["steps_to_target"]["n"]
    ]
    if pts:
        e, st, b = zip(*pts, strict=True)
        ax.plot(e, st, "o", label="measured (best LR per B)")
        for ei, si, bi in pts:
            ax.annotate(f"B={bi}", (ei, si), fontsize=7, xytext=(3, 3), textcoords="offset points")
    if fit is not None:
        grid = np.geomspace(1, 1e5, 200)
        ci = fit["interval"]
        label = (
            f"fit: S_min {fit['s_min']:.3g}, E_min {fit['e_min']:.3g}, B_crit {fit['b_crit']:.3g} {interval_text(ci)}"
        )
        ax.plot(tradeoff_examples(fit, grid), tradeoff_steps(fit, grid), "-", lw=1, label=label)
    _axes(ax, "examples to target", "steps to target", title)
    return _save(fig, directory / "tradeoff.png")


def noise_scale(directory: Path, rows: list[dict[str, Any]], fit: dict[str, Any] | None, title: str) -> Path:
    """B_simple along training (best LR of each batch size), with B_crit from the fit."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6, 4.2))
    for i, s in enumerate(rows):
        n = s["noise"]
        if n is None:
            continue
        pts = [(st, v) for st, v in zip(n["step"], n["b_simple"], strict=True) if v is not None and v > 0]
        if pts:
            ax.plot(*zip(*pts, strict=True), "o-", color=f"C{i}", label=f"B={s['row']['batch_size']}")
    if fit is not None:
        ax.axhline(fit["b_crit"], color="k", ls="--", lw=1, label=f"B_crit from the fit ({fit['b_crit']:.3g})")
    _axes(ax, "step", "B_simple = tr(Sigma) / |G|^2", title)
    return _save(fig, directory / "noise_scale.png")


def write_plots(
    directory: Path, doc: SweepDocument, rows: list[dict[str, Any]], fit: dict[str, Any] | None
) -> list[Path]:
    """Every plot of a sweep directory (``fit``: ``summary.sweep_fit`` of ``rows``)."""
    wl, target = doc.config.workload, doc.config.target
    title = f"{wl.dataset} / {wl.model} / {wl.optimizer}: {target.metric} {target.value}"
    curve = []
    if fit is not None:
        sizes = [s["row"]["batch_size"] for s in rows]
        b = np.geomspace(min(sizes), max(sizes), 100)
        curve = [(f"fit S_min (1 + B_crit/B), B_crit {fit['b_crit']:.3g}", b, tradeoff_steps(fit, b))]
    return [
        steps_to_target(directory, rows, title, curve),
        tradeoff(directory, rows, fit, title),
        noise_scale(directory, rows, fit, title),
        seconds_to_target(directory, rows, title),
        loss_curves(directory, doc, rows, f"{wl.dataset} / {wl.model}"),
        best_lr(directory, rows, title),
    ]
