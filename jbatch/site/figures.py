"""The site's interactive figures, as Plotly figure specifications (data and layout, JSON-ready
dicts) from the results documents and the same analysis the PNG plots use
(``analysis.summary``, ``analysis.selection``, ``analysis.tradeoff``, ``analysis.ladder``).
Plotly is imported only by ``spec``; every figure keeps its traces' count (``traces``), which
the browser test checks against what it draws."""

from __future__ import annotations

import json
import math
from typing import Any

import numpy as np

from jbatch.analysis.selection import best_replicas, series
from jbatch.analysis.summary import time_accounting
from jbatch.analysis.tradeoff import steps_curve
from jbatch.results import AdviceDocument, SweepDocument

LOG = {"type": "log"}
FADED = 0.18  # the opacity of the learning rates that are not a batch size's best


def spec(traces: list[dict[str, Any]], title: str, x: str, y: str, log_x: bool = True, log_y: bool = True, **layout):
    """A figure: ``traces`` (Plotly trace dicts) on titled axes, validated by Plotly's own
    Figure class (an unknown property is an error here, not a blank figure in a
    browser) and returned as plain JSON-ready data."""
    import plotly.graph_objects as go

    fig = go.Figure(
        data=traces,
        layout={
            "title": {"text": title, "font": {"size": 14}},
            "xaxis": {"title": {"text": x}, **(LOG if log_x else {})},
            "yaxis": {"title": {"text": y}, **(LOG if log_y else {})},
            "template": "plotly_white",
            "hovermode": "closest",
            "margin": {"t": 50, "r": 20},
            "legend": {"orientation": "h", "y": -0.25},
            **layout,
        },
    )
    return json.loads(fig.to_json())


def _clean(values: Any) -> list[float | None]:
    return [None if v is None or not math.isfinite(float(v)) else float(v) for v in values]


def with_interval(name: str, x: list, y: list, lo: list, hi: list, **extra: Any) -> dict[str, Any]:
    """A line of markers with asymmetric error bars from ``lo`` to ``hi`` (None: none)."""
    return {
        "type": "scatter",
        "mode": "lines+markers",
        "name": name,
        "x": x,
        "y": y,
        "error_y": {
            "type": "data",
            "symmetric": False,
            "array": _clean(None if h is None else h - v for h, v in zip(hi, y, strict=True)),
            "arrayminus": _clean(None if v0 is None else v - v0 for v0, v in zip(lo, y, strict=True)),
        },
        **extra,
    }


def to_target(rows: list[dict[str, Any]], fit: dict[str, Any] | None, key: str, label: str) -> dict[str, Any]:
    """Steps (or examples) to target against B at each B's best learning rate: mean and the seeds'
    range as error bars, with the S(B) fit and perfect scaling (``key``: ``steps_to_target`` or
    ``examples_to_target``)."""
    pts = [s["row"] for s in rows if s["row"][key]["n"]]
    b = [r["batch_size"] for r in pts]
    mean = [r[key]["mean"] for r in pts]
    traces = [
        with_interval(
            "measured (best lr per B; bars: seeds' range)",
            b,
            mean,
            [r[key]["min"] for r in pts],
            [r[key]["max"] for r in pts],
            hovertemplate="B = %{x}<br>" + label + " %{y:.4g}<extra></extra>",
        )
    ]
    if len(b) > 1:
        grid = np.geomspace(min(b), max(b), 60)
        per = 1.0 / grid if key == "steps_to_target" else np.ones_like(grid)
        traces.append(
            {
                "type": "scatter",
                "mode": "lines",
                "name": "perfect scaling",
                "x": grid.tolist(),
                "y": (mean[0] * per / per[0]).tolist(),
                "line": {"dash": "dash", "color": "gray", "width": 1},
            }
        )
        if fit is not None:
            s = steps_curve(fit, grid)
            traces.append(
                {
                    "type": "scatter",
                    "mode": "lines",
                    "name": f"fit S_min (1 + B_crit / B), B_crit {fit['b_crit']:.3g}",
                    "x": grid.tolist(),
                    "y": (s if key == "steps_to_target" else s * grid).tolist(),
                }
            )
    return spec(traces, f"{label} against the batch size", "batch size B", label)


def seconds_to_target(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Seconds to target against B with the 95% intervals (seeds' steps x timing rounds); the
    fastest set marked."""
    pts = [s["row"] for s in rows if s["row"]["seconds_to_target_interval"] and s["row"]["seconds_to_target"]["n"]]
    mean = [r["seconds_to_target"]["mean"] for r in pts]
    lo, hi = zip(*(r["seconds_to_target_interval"] for r in pts), strict=True) if pts else ((), ())
    traces = [
        with_interval(
            "seconds to target, 95% interval",
            [r["batch_size"] for r in pts],
            mean,
            [max(v, 0.0) for v in lo],
            list(hi),
            marker={"size": [12 if r.get("fastest") else 7 for r in pts]},
            hovertemplate="B = %{x}<br>%{y:.4g} s<extra></extra>",
        )
    ]
    return spec(
        traces, "Seconds to target (large markers: the fastest set)", "batch size B", "seconds (compile excluded)"
    )


def curves(doc: SweepDocument, rows: list[dict[str, Any]], key: str = "test_loss") -> dict[str, Any]:
    """``key``'s curve (seed mean) against examples for every learning rate of every batch
    size: the best learning rate drawn full, the others faded."""
    traces = []
    for i, s in enumerate(rows):
        r = s["row"]
        result = doc.result(r["batch_size"])
        best = {id(x) for x in best_replicas(result.replicas, r)}
        groups: dict[tuple, list[Any]] = {}
        for rep in result.replicas:
            groups.setdefault((rep.learning_rate, tuple(sorted(rep.hyperparameters.items()))), []).append(rep)
        color = f"hsl({(i * 67) % 360}, 65%, 45%)"
        for (lr, _), reps in sorted(groups.items(), key=lambda kv: kv[0][0]):
            steps = np.asarray(series(reps[0], key)[0], float)
            values = np.array([[np.nan if v is None else v for v in series(x, key)[1]] for x in reps], float)
            if not steps.size or values.shape[1] != steps.size:
                continue
            keep = np.all(np.isfinite(values), 0)
            if not keep.any():
                continue
            is_best = any(id(x) in best for x in reps)
            traces.append(
                {
                    "type": "scatter",
                    "mode": "lines",
                    "name": f"B={r['batch_size']} lr {lr:.3g}" + (" (best)" if is_best else ""),
                    "x": (steps[keep] * r["batch_size"]).tolist(),
                    "y": values[:, keep].mean(0).tolist(),
                    "line": {"color": color, "width": 2 if is_best else 1},
                    "opacity": 1.0 if is_best else FADED,
                    "legendgroup": str(r["batch_size"]),
                    "showlegend": is_best,
                    "hovertemplate": f"B={r['batch_size']}, lr {lr:.3g}<br>" + "%{x} examples: %{y:.4g}<extra></extra>",
                }
            )
    return spec(traces, f"{key} along training (faded: the other learning rates)", "examples seen", key, log_y=False)


def noise_scale(rows: list[dict[str, Any]], fit: dict[str, Any] | None) -> dict[str, Any]:
    """B_simple along training at each B's best learning rate, with the fit's B_crit."""
    traces = []
    for s in rows:
        n = s["noise"]
        if n is None:
            continue
        pts = [(st, v) for st, v in zip(n["step"], n["b_simple"], strict=True) if v is not None and v > 0]
        if pts:
            x, y = zip(*pts, strict=True)
            traces.append(
                {"type": "scatter", "mode": "lines+markers", "name": f"B={s['row']['batch_size']}", "x": x, "y": y}
            )
    shapes = []
    if fit is not None:
        shapes = [
            {
                "type": "line",
                "xref": "paper",
                "x0": 0,
                "x1": 1,
                "y0": fit["b_crit"],
                "y1": fit["b_crit"],
                "line": {"dash": "dash"},
            }
        ]
    return spec(
        traces, "Noise scale B_simple along training (dashed: the fit's B_crit)", "step", "B_simple", shapes=shapes
    )


def ladder(levels: list[dict[str, Any]], higher: bool) -> dict[str, Any]:
    """B_crit fitted at each level of the target metric (``analysis.ladder``), with its interval."""
    pts = [e for e in levels if e["fit"] is not None]
    b = [e["fit"]["b_crit"] for e in pts]
    ci = [e["fit"].get("interval") or {} for e in pts]
    traces = [
        with_interval(
            "B_crit at the level (95% interval)",
            [e["level"] for e in pts],
            b,
            [c.get("low") for c in ci],
            [c.get("high") for c in ci],
        )
    ]
    return spec(
        traces,
        "B_crit against the target",
        "target level" + (" (higher is better)" if higher else ""),
        "B_crit",
        log_x=False,
    )


def time_spent(doc: SweepDocument) -> dict[str, Any]:
    """Where each batch size's wall time went (training, evaluation, probes, compilation...)."""
    parts: dict[str, dict[int, float]] = {}
    sizes = sorted(int(b) for b in doc.batch_sizes)
    for b in sizes:
        for k, v in (time_accounting(doc.result(b)) or {}).items():
            if k != "wall":
                parts.setdefault(k, {})[b] = v
    traces = [
        {"type": "bar", "name": k, "x": [str(b) for b in sizes], "y": [v.get(b, 0.0) for b in sizes]}
        for k, v in parts.items()
    ]
    return spec(traces, "Where the time went", "batch size B", "seconds", log_x=False, log_y=False, barmode="stack")


def across(sweeps: dict[str, tuple[list[dict[str, Any]], dict[str, Any] | None]]) -> dict[str, Any]:
    """Every workload on one plot as Shallue et al. and McCandlish et al. draw it: steps to target
    over S_min against B over B_crit, with the curve ``1 + 1 / x`` every fit lies on."""
    traces = []
    for name, (rows, fit) in sweeps.items():
        if fit is None:
            continue
        pts = [s["row"] for s in rows if s["row"]["steps_to_target"]["n"]]
        traces.append(
            {
                "type": "scatter",
                "mode": "markers",
                "name": name,
                "x": [r["batch_size"] / fit["b_crit"] for r in pts],
                "y": [r["steps_to_target"]["mean"] / fit["s_min"] for r in pts],
                "text": [f"B = {r['batch_size']}" for r in pts],
                "hovertemplate": name + ", %{text}<br>B / B_crit %{x:.3g}, S / S_min %{y:.3g}<extra></extra>",
            }
        )
    grid = np.geomspace(1e-3, 1e3, 80)
    traces.append(
        {
            "type": "scatter",
            "mode": "lines",
            "name": "S / S_min = 1 + B_crit / B",
            "x": grid.tolist(),
            "y": (1 + 1 / grid).tolist(),
            "line": {"color": "black", "dash": "dash"},
        }
    )
    return spec(
        traces, "Every workload: steps to target against the batch size, scaled by its fit", "B / B_crit", "S / S_min"
    )


def b_star(doc: AdviceDocument) -> dict[str, Any]:
    """The advice's local critical batch size B* along the trunk: each seed's and the median."""
    cps = doc.branching.checkpoints
    seeds = sorted({s for e in cps for s in e.b_star})
    traces = [
        {
            "type": "scatter",
            "mode": "markers",
            "name": f"seed {s}",
            "x": [max(e.step, 1) for e in cps if s in e.b_star],
            "y": [e.b_star[s] for e in cps if s in e.b_star],
            "opacity": 0.5,
        }
        for s in seeds
    ]
    traces.append(
        {
            "type": "scatter",
            "mode": "lines+markers",
            "name": "median",
            "x": [max(e.step, 1) for e in cps],
            "y": [e.b_star_median for e in cps],
        }
    )
    return spec(traces, "B* along the trunk (step 0 drawn at 1)", f"trunk step at B = {doc.trunk_batch}", "B*")


def prediction(doc: AdviceDocument) -> dict[str, Any]:
    """The advice's predicted steps to target (relative to B0's) beside the sweep's measured ones
    (relative to the sweep's at B0, where the sweep ran it)."""
    sizes = doc.candidates
    traces = [
        {
            "type": "scatter",
            "mode": "lines+markers",
            "name": "predicted by the advice",
            "x": sizes,
            "y": [doc.relative_steps[str(b)] for b in sizes],
        }
    ]
    truth = doc.against
    if truth and truth.steps_to_target and str(doc.trunk_batch) in truth.steps_to_target:
        ref = truth.steps_to_target[str(doc.trunk_batch)]
        measured = [(int(b), v / ref) for b, v in sorted(truth.steps_to_target.items(), key=lambda kv: int(kv[0]))]
        traces.append(
            {
                "type": "scatter",
                "mode": "markers",
                "name": "measured by the sweep",
                "x": [m[0] for m in measured],
                "y": [m[1] for m in measured],
            }
        )
    return spec(traces, f"Steps to target over B = {doc.trunk_batch}'s", "batch size B", "relative steps")


def throughput(measured: dict[tuple[str, str, Any], dict[str, Any]]) -> list[tuple[str, dict[str, Any]]]:
    """Per workload of the throughput benchmark (``report.throughput.measurements``): samples per
    second against B for every implementation, bars from the slowest to the fastest round."""
    out = []
    for workload in sorted({k[0] for k in measured}):
        traces = []
        for impl in sorted({k[1] for k in measured if k[0] == workload}):
            cells = sorted(
                (k[2], v) for k, v in measured.items() if k[:2] == (workload, impl) and isinstance(k[2], int)
            )
            if cells:
                traces.append(
                    with_interval(
                        impl,
                        [b for b, _ in cells],
                        [v["samples_per_second"] for _, v in cells],
                        [v["slowest"] for _, v in cells],
                        [v["fastest"] for _, v in cells],
                    )
                )
        if traces:
            out.append((workload, spec(traces, f"{workload}: training throughput", "batch size B", "samples / s")))
    return out


def time_to_target(cases: dict[tuple[str, str, int | None], dict[str, Any]]) -> dict[str, Any]:
    """Seconds to the target per regime and implementation (``report.throughput.convergence``):
    the median round of each seed, bars its interval."""
    traces = []
    for impl in sorted({k[1] for k in cases}):
        pts = sorted((k[0], k[2], v) for k, v in cases.items() if k[1] == impl and v.get("reached"))
        if pts:
            traces.append(
                {
                    **with_interval(
                        impl,
                        [f"{r} (seed {s})" for r, s, _ in pts],
                        [v["median"] for _, _, v in pts],
                        [v["interval"][0] for _, _, v in pts],
                        [v["interval"][1] for _, _, v in pts],
                    ),
                    "mode": "markers",
                }
            )
    return spec(traces, "Time to target per regime and seed", "regime", "seconds", log_x=False)


def compared(plot: dict[str, Any], key: str) -> dict[str, Any]:
    """Steps (``key`` ``steps``) or seconds to target against B for each compared run
    (``report.compare.comparison``'s plot data)."""
    traces = []
    for i, run in enumerate(plot["runs"]):
        pts = [(b, v) for b, v in zip(plot["sizes"], run[key], strict=True) if v is not None]
        traces.append(
            {
                "type": "scatter",
                "mode": "lines+markers",
                "name": f"[{i}] {run['name']}",
                "x": [b for b, _ in pts],
                "y": [v for _, v in pts],
            }
        )
    return spec(traces, f"{key} to target, run by run", "batch size B", f"{key} to target")
