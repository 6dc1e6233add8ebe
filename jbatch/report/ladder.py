"""The ladder in a sweep's report: its table and ``ladder.png`` (``analysis.ladder`` computes it)."""

from __future__ import annotations

from typing import Any

import numpy as np

from jbatch.analysis.tradeoff import interval_bounds
from jbatch.report import table
from jbatch.report.plot import _pyplot, _save
from jbatch.report.table import interval_text
from jbatch.results import SweepDocument


def ladder_section(doc: SweepDocument, lad: list[dict[str, Any]], along: list[dict[str, Any]]) -> list[str]:
    """The Markdown of the ladder: one row per level, then B_simple along training."""
    target = doc.config.target
    body = []
    for step in lad:
        f = step["fit"]
        if f is None:
            body.append([table.num(step["level"]), "-", "-", "-", str(len(step["reached"])), "-"])
            continue
        crit = table.num(f["b_crit"], 3) + (
            f" ({'above' if f['bound'] == 'above' else 'below'} the range)" if f["bound"] else ""
        )
        body.append(
            [
                table.num(step["level"]),
                crit,
                interval_text(f["interval"]),
                table.num(f["s_min"], 3),
                str(len(step["reached"])),
                ("coarse " if step["coarse"] else "") + (", ".join(map(str, f["bounds"])) or "-"),
            ]
        )
    lines = [
        "",
        f"## Critical batch size against the target ({target.metric} "
        f"{'>=' if target.higher_is_better else '<='} each level)",
        "",
        *table.markdown(["level", "B_crit", "95% interval", "S_min", "batch sizes there", "bounds / resolution"], body),
        "",
        "Each level picks each batch size's best setting for that level and fits S(B) again (no new training). "
        "'bounds': batch sizes whose best learning rate there is on a grid edge; 'coarse': some best runs "
        "reached that level only at a coarse evaluation point.",
    ]
    if along:
        lines += [
            "",
            "B_simple along training, at the level the metric had at each checkpoint of the best runs: "
            + "; ".join(
                f"B={b}: "
                + ", ".join(
                    f"{table.num(p['b_simple'], 3)} at {table.num(p['level'], 3)}"
                    for p in along
                    if p["batch_size"] == b
                )
                for b in sorted({p["batch_size"] for p in along})
            )
            + ".",
        ]
    return lines


def plot_ladder(directory, doc: SweepDocument, lad: list[dict[str, Any]], along: list[dict[str, Any]]):
    """``ladder.png``: B_crit (with its interval) and B_simple against the target level."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6, 4.2))
    pts = [(s["level"], s["fit"]) for s in lad if s["fit"] is not None]
    if pts:
        x = np.array([p[0] for p in pts])
        y = np.array([p[1]["b_crit"] for p in pts])
        ends = [interval_bounds(p[1]["interval"]) or (p[1]["b_crit"], p[1]["b_crit"]) for p in pts]  # none: no bar
        lo = np.array([e[0] for e in ends])
        hi = np.array([min(e[1], 1e12) for e in ends])  # an unbounded end: a bar off the plot
        ax.errorbar(
            x,
            y,
            yerr=[np.maximum(y - lo, 0), np.maximum(hi - y, 0)],
            fmt="o-",
            color="k",
            capsize=3,
            label="B_crit from the fit at each level (95%)",
        )
    for i, b in enumerate(sorted({p["batch_size"] for p in along})):
        q = [(p["level"], p["b_simple"]) for p in along if p["batch_size"] == b and p["b_simple"] > 0]
        if q:
            ax.plot(*zip(*q, strict=True), ".", color=f"C{i}", alpha=0.8, label=f"B_simple along training, B={b}")
    ax.set_yscale("log")
    ax.set_xlabel(doc.config.target.metric)
    ax.set_ylabel("batch size")
    ax.set_title(f"{doc.name}: critical batch size against the target", fontsize=10)
    ax.grid(True, which="both", alpha=0.3)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=7)
    return _save(fig, directory / "ladder.png")
