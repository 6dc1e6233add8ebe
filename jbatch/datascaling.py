"""The critical batch size against the amount of data: one sweep per training-set size of
MNIST-1D (nested sizes, one test set: ``jbatch.mnist1d``), and a power law through them.

Zhang et al. (2024) and Bergsma et al. (2025) report that the critical batch size grows
with the amount of data, as a power law, hardly with model size. ``jbatch study
data-scaling`` sweeps each model at each size with a target every size reaches, fits
``B_crit`` per size (with its bootstrap interval), and fits ``B = c N^k`` to them and to the
measured noise scale B_simple (its median near the target over the batch sizes), with a
95% interval for each exponent. It writes ``table.md``, ``table.csv``, ``scaling.json`` and
``data_scaling.png``.
"""

from __future__ import annotations

import csv
import io
import math
from pathlib import Path
from typing import Any

import numpy as np

from jbatch import table
from jbatch.config import SweepConfig
from jbatch.store import write_bytes, write_json, write_text
from jbatch.tradeoff import interval_bounds

SIZES = (4000, 16000, 64000)
MODELS = ("mlp", "cnn")
# Targets every size reaches within budget: at 4,000 sequences the MLP plateaus near 0.6-0.68 test accuracy and
# jbatch's CNN reaches 0.75-0.88 in 300-400 steps (results/mnist1d-*-sgd); higher levels are in each sweep's ladder.
TARGETS = {"mlp": 0.55, "cnn": 0.75}
GRIDS = {"mlp": (0.01, 0.03162, 0.1, 0.3162, 1.0), "cnn": (0.03162, 0.1, 0.3162, 1.0)}


def study_config(model: str, n: int, accelerator: bool = False) -> SweepConfig:
    """The sweep of ``model`` at ``n`` training sequences: sized for this 2-core CPU, or,
    with ``accelerator``, for a GPU (wider MLP, more seeds, larger batch sizes)."""
    sizes = (1, 8, 64, 512, 4096, 16384) if accelerator else (1, 8, 64, 512, 2048)  # the same B at every N
    return SweepConfig(
        name=f"{model}-{n}", dataset=f"mnist1d:{n}", model=model, widths=(512, 512) if accelerator else (256, 256),
        batch_sizes=tuple(b for b in sizes if b <= n), learning_rates=GRIDS[model],
        seeds=(0, 1, 2) if accelerator else (0, 1), target_value=TARGETS[model], budget_steps=400, budget_epochs=3,
    )  # fmt: skip


def power_law(n: np.ndarray, values: np.ndarray, sigma: np.ndarray, draws: int = 2000, seed: int = 0) -> dict:
    """``values = c n^k`` by least squares on the logs, and a 95% interval of ``k`` from a
    parametric bootstrap (each log value drawn with its standard deviation ``sigma``).

    Example:
      >>> f = power_law(np.array([1e3, 1e4, 1e5]), np.array([10.0, 31.6, 100.0]), np.full(3, 0.01))
      >>> round(f["exponent"], 2), f["low"] < 0.5 < f["high"]
      (0.5, True)
    """
    x, y = np.log(n), np.log(values)
    k, a = np.polyfit(x, y, 1)
    rng = np.random.default_rng(seed)
    ks = [np.polyfit(x, y + rng.normal(0, sigma), 1)[0] for _ in range(draws)]
    lo, hi = np.percentile(ks, [2.5, 97.5])
    return {"exponent": float(k), "prefactor": float(math.exp(a)), "low": float(lo), "high": float(hi)}


def collect(root: Path, models=MODELS, sizes=SIZES) -> list[dict[str, Any]]:
    """One row per (model, size) that has a sweep under ``root``: B_crit with its interval,
    B_simple near the target, the target and the sweep's wall time."""
    from jbatch.report import load_document, summarize
    from jbatch.summary import sweep_fit, time_accounting

    rows = []
    for model in models:
        for n in sizes:
            d = root / f"{model}-{n}"
            if not (d / "sweep.json").exists():
                continue
            doc = load_document(d)
            summaries = summarize(doc)
            fit = sweep_fit(summaries)
            near = [s["noise"]["at_target"] for s in summaries if s["noise"] and s["noise"]["at_target"]]
            wall = sum((time_accounting(r) or {"wall": 0})["wall"] for r in doc["batch_sizes"].values())
            bounds = (interval_bounds(fit["interval"]) if fit else None) or (None, None)
            rows.append({"model": model, "n": n, "target": doc["config"]["target_value"],
                         "b_crit": fit["b_crit"] if fit else None, "low": bounds[0], "high": bounds[1],
                         "bound": fit["bound"] if fit else None, "b_simple": float(np.median(near)) if near else None,
                         "b_simple_all": near, "wall_seconds": wall,
                         "metadata": doc["metadata"]})  # fmt: skip
    return rows


def fits(rows: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Per model: the power laws of B_crit and of B_simple against N."""
    out = {}
    for model in sorted({r["model"] for r in rows}):
        mine = [r for r in rows if r["model"] == model and r["b_crit"]]
        if len(mine) < 2:
            continue
        n = np.array([r["n"] for r in mine], float)
        crit = np.array([r["b_crit"] for r in mine])
        sigma = np.array([(math.log(r["high"]) - math.log(r["low"])) / (2 * 1.96) for r in mine])
        entry = {"b_crit": power_law(n, crit, sigma)}
        simple = [r for r in mine if r["b_simple"]]
        if len(simple) >= 2:
            spread = np.array([np.std(np.log(r["b_simple_all"])) / math.sqrt(len(r["b_simple_all"])) + 1e-3
                               for r in simple])  # fmt: skip
            entry["b_simple"] = power_law(np.array([r["n"] for r in simple], float),
                                          np.array([r["b_simple"] for r in simple]), spread)  # fmt: skip
        out[model] = entry
    return out


def verdict(fit: dict[str, Any]) -> str:
    """Whether the critical batch size grows with the amount of data, by its exponent's interval."""
    f = fit["b_crit"]
    if f["low"] > 0:
        return f"holds: B_crit grows as N^{f['exponent']:.2f} (95% interval [{f['low']:.2f}, {f['high']:.2f}])"
    if f["high"] < 0:
        return f"does not hold: B_crit falls as N^{f['exponent']:.2f} ([{f['low']:.2f}, {f['high']:.2f}])"
    return f"not shown: exponent {f['exponent']:.2f}, 95% interval [{f['low']:.2f}, {f['high']:.2f}] includes 0"


def write_study(root: Path) -> list[Path]:
    """``table.md``, ``table.csv``, ``scaling.json`` and ``data_scaling.png`` of ``root``."""
    rows = collect(root)
    if not rows:
        from jbatch.errors import ConfigError

        raise ConfigError(f"{root} holds no data-scaling sweep (run: jbatch study data-scaling)")
    laws = fits(rows)
    buf = io.StringIO()
    keys = ["model", "n", "target", "b_crit", "low", "high", "bound", "b_simple", "wall_seconds"]
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(keys)
    w.writerows([["" if r[k] is None else r[k] for k in keys] for r in rows])
    written = [write_text(root / "table.md", markdown(rows, laws)),
               write_bytes(root / "table.csv", buf.getvalue().encode()),
               write_json(root / "scaling.json", {"kind": "jbatch.data-scaling", "rows": rows, "fits": laws})]
    written.append(_plot(root, rows, laws))
    return written


def markdown(rows: list[dict[str, Any]], laws: dict[str, dict[str, Any]]) -> str:
    """``table.md`` of the study: one row per sweep, each model's power laws and verdict."""
    body = [[r["model"], str(r["n"]), table.num(r["target"]),
             table.num(r["b_crit"], 3) + (f" ({r['bound']} the range)" if r["bound"] else ""),
             table.interval(r["low"], r["high"]), table.num(r["b_simple"], 3), table.num(r["wall_seconds"], 3)]
            for r in rows]  # fmt: skip
    lines = ["# Critical batch size against the amount of data (MNIST-1D, nested sizes)", "",
             *table.markdown(["model", "N", "target test acc", "B_crit", "95% interval", "B_simple near target",
                              "sweep seconds"], body), ""]  # fmt: skip
    for model, f in laws.items():
        line = f"- {model}: {verdict(f)}"
        if "b_simple" in f:
            s = f["b_simple"]
            line += f"; B_simple ∝ N^{s['exponent']:.2f} ([{s['low']:.2f}, {s['high']:.2f}])"
        lines.append(line)
    meta = rows[0]["metadata"]
    lines += ["", "Each size trains on a class-balanced subset of the next larger one, with one fixed 1,000-sequence "
                  "test set; B_crit is the fit of S(B) = S_min (1 + B_crit / B) to each sweep (interval: bootstrap "
                  "over the seeds within each batch size); the exponents are least squares on logs, intervals by "
                  "parametric bootstrap from those intervals.",
              f"Measured on {meta['device_kind']} ({meta['backend']}), CPU {meta['cpu']}, jax "
              f"{meta['versions']['jax']}, {meta['date']}, commit {str(meta['commit']['id'])[:10]}."]  # fmt: skip
    return "\n".join(lines) + "\n"


def _plot(root: Path, rows: list[dict[str, Any]], laws: dict) -> Path:
    from jbatch.plot import _pyplot, _save

    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6, 4.2))
    for i, model in enumerate(sorted({r["model"] for r in rows})):
        mine = [r for r in rows if r["model"] == model and r["b_crit"]]
        n = np.array([r["n"] for r in mine], float)
        y = np.array([r["b_crit"] for r in mine])
        lo, hi = np.array([r["low"] for r in mine]), np.array([r["high"] for r in mine])
        ax.errorbar(n, y, yerr=[np.maximum(y - lo, 0), np.maximum(hi - y, 0)], fmt="o", capsize=3, color=f"C{i}",
                    label=f"{model}: B_crit (95%)")  # fmt: skip
        s = [(r["n"], r["b_simple"]) for r in mine if r["b_simple"]]
        if s:
            ax.plot(*zip(*s, strict=True), "s", mfc="none", color=f"C{i}", label=f"{model}: B_simple near target")
        if model in laws:
            f, grid = laws[model]["b_crit"], np.geomspace(n.min(), n.max(), 50)
            ax.plot(grid, f["prefactor"] * grid ** f["exponent"], "-", color=f"C{i}", lw=1,
                    label=f"{model}: B_crit ∝ N^{f['exponent']:.2f}")  # fmt: skip
    ax.set(xscale="log", yscale="log", xlabel="training sequences N", ylabel="batch size",
           title="MNIST-1D: critical batch size against data")  # fmt: skip
    ax.grid(True, which="both", alpha=0.3)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=7)
    return _save(fig, root / "data_scaling.png")


def configs(models=MODELS, sizes=SIZES, accelerator: bool = False) -> list[SweepConfig]:
    """Every sweep of the study, smallest size first."""
    return [study_config(m, n, accelerator) for m in models for n in sizes]

