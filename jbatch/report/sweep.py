"""Tables and plots of a sweep, regenerated from its JSON document alone.

``table.md`` / ``table.csv`` have one row per batch size; the PNG plots show steps and
seconds to target against batch size, loss curves per regime, and the best learning rate
against the linear and square-root scaling rules.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Any

import numpy as np

from jbatch.analysis.ladder import ladder, noise_along
from jbatch.analysis.summary import (
    MIN_ROUNDS,
    at_start,
    noise_averaged,
    result_metadata,
    summarize,
    sweep_fit,
    time_accounting,
)
from jbatch.report import table
from jbatch.report.ladder import ladder_section, plot_ladder
from jbatch.report.plot import write_plots  # matplotlib itself is imported only when plotting
from jbatch.report.table import interval_text
from jbatch.results import SweepDocument, read_sweep
from jbatch.results.records import failure_lines
from jbatch.store import write_text

COLUMNS = [  # (csv name, markdown header, how to show it)
    ("regime", "regime", "text"),
    ("batch_size", "B", "int"),
    ("steps_per_epoch", "steps/epoch", "int"),
    ("best_learning_rate", "best LR", "g"),
    ("lr_edge", "", "skip"),
    ("samples_per_second", "samples/s", "k"),
    ("seconds_per_epoch", "s/epoch", "s"),
    ("steps_to_target", "steps to target", "spread"),
    ("epochs_to_target", "epochs to target", "spread"),
    ("examples_to_target", "examples to target", "spread"),
    ("tokens_to_target", "tokens to target", "spread"),
    ("tokens_per_batch", "tokens/batch", "int"),
    ("seconds_to_target", "seconds to target [95% in this run]", "seconds"),
    ("seconds_to_target_interval", "", "interval"),
    ("fastest", "", "skip"),
    ("best_test_accuracy", "best test acc", "spread"),
    ("final_train_loss", "final train loss", "spread"),
    ("epoch_of_min_test_loss", "epoch of min test loss", "spread"),
    ("diverged_fraction", "diverged (grid)", "pct"),
    ("stable", "", "skip"),
    ("coarse_steps", "", "skip"),
]
TIME_COLUMNS = ("train", "evaluate", "noise", "compile", "c11_demo", "timing", "other", "wall")


EDGE_MARKS = {"grid-low": "↓", "grid-high": "↑", "stable-edge": "‡"}


def _cell(row: dict[str, Any], key: str, how: str, seeds: int = 0) -> str:
    value = row[key]
    if how in ("spread", "seconds"):
        if how == "seconds" and value["n"] == 0 and row["steps_to_target"]["n"] and row["samples_per_second"] is None:
            return "not timed"  # reached, but the timing rounds had not run (an interrupted sweep)
        if value["n"] == 0:
            return "not reached" if seeds else "-"
        text = table.spread(value["mean"], value["std"], value["n"])
        if how == "seconds":
            iv = row["seconds_to_target_interval"]
            text = table.num(value["mean"], 3) + (f" {table.interval(*iv)}" if iv else "")
            text += " ★" if row.get("fastest") else ""
        elif key == "steps_to_target" and row.get("coarse_steps"):
            text += " (coarse)"
        return text + (f" ({value['n']}/{seeds})" if seeds and value["n"] < seeds else "")
    if value is None:
        return "-"
    if key == "best_learning_rate":
        marks = [EDGE_MARKS[row["lr_edge"]]] if row.get("lr_edge") else []
        marks += [f"{k} {table.num(v)}" for k, v in row.get("best_hyperparameters", {}).items()]
        if row["stable"] < row["seeds"]:
            marks.append(f"({row['stable']}/{row['seeds']} stable)")
        return " ".join([table.num(value), *marks])
    return {
        "text": str,
        "int": lambda v: f"{int(v)}",
        "g": table.num,
        "k": table.rate,
        "s": table.num,
        "pct": table.percent,
    }[how](value)


def _target_columns(name: str) -> bool:
    return name.endswith("_to_target")


def measured_on(doc: SweepDocument) -> str:
    """Where and with what the batch sizes were measured: each result's own metadata (a
    resumed or ``--force``d sweep mixes runs), the document's where a result has none."""
    metas = [result_metadata(doc, r) for r in doc.batch_sizes.values()] or [doc.metadata]
    meta = max(metas, key=lambda m: m.date)
    dates = sorted({m.date for m in metas})
    commits = sorted({str(m.commit.id)[:10] + (" (with uncommitted changes)" if m.commit.dirty else "") for m in metas})
    when = dates[0] if len(dates) == 1 else f"{dates[0]} to {dates[-1]}"
    v = meta.versions
    return (
        f"Measured on {meta.device_kind} ({meta.backend}, {meta.device_count} device(s)), "
        f"CPU {meta.cpu}, jax {v.get('jax')}, flax {v.get('flax')}, optax {v.get('optax')}, {when}, "
        f"commit {', '.join(commits)}."
    )


def markdown_table(
    doc: SweepDocument, rows: list[dict[str, Any]], fit: dict[str, Any] | None, levels: list | None = None
) -> str:
    """``table.md``: the table, then the notes that say how to read it, where the sweep's
    time went, and the critical batch size (``levels``: ``analysis.ladder.ladder(doc)``,
    computed here when not given)."""
    cfg = doc.config
    wl, grid, training, target, m = cfg.workload, cfg.grid, cfg.training, cfg.target, cfg.measurement
    tokens = any(s["row"]["tokens_per_batch"] != s["row"]["batch_size"] for s in rows)  # sequences: count tokens
    shown = [
        c
        for c in COLUMNS
        if c[2] not in ("skip", "interval")  # the CSV has every column
        and (tokens or c[0] not in ("tokens_to_target", "tokens_per_batch"))
    ]
    body = [
        [_cell(s["row"], key, how, s["row"]["seeds"] if _target_columns(key) else 0) for key, _, how in shown]
        for s in rows
    ]
    ev = next(iter(doc.batch_sizes.values())).evaluation
    notes = [
        "",
        f"Sweep `{doc.name}`: {wl.dataset} ({doc.num_train} training examples), "
        f"model {wl.model}, optimizer {wl.optimizer}, seeds {list(grid.seeds)}, "
        f"learning-rate grid {list(grid.learning_rates)}"
        + "".join(
            f", {k} grid {list(getattr(grid, k))}" for k in ("momentum", "b2", "weight_decay") if getattr(grid, k)
        )
        + (
            f", beta2 rescaled per batch size to keep its half-life at B={training.beta2_reference}"
            if training.beta2_reference
            else ""
        )
        + (
            f", {training.schedule} schedule over each budget (warm-up {training.warmup}, final "
            f"{training.final_fraction})"
            if training.schedule != "constant" or training.warmup
            else ""
        )
        + ".",
        f"Target: {target.metric} {'>=' if target.higher_is_better else '<='} {target.value}. Each batch size is "
        "shown at its own best learning rate (most seeds reaching the target and staying stable, then most "
        "reaching it, then fewest mean steps, then lowest final test loss); to-target columns are mean ± sample "
        "std (ddof=1) over the seeds that reached it (n/seeds when not all did). Steps to target are resolved to "
        f"the fine evaluation cadence of the {ev.fine} split (about {m.evals} points per "
        "run, single steps early on for large batches), evaluated until a replica reaches the target or can no "
        "longer be the best; '(coarse)' marks a row whose steps are only resolved to the coarse cadence.",
        "A mark on the best LR says the grid, not the data, limits it, so that row's to-target numbers are "
        "upper bounds: ↓ / ↑ the lowest / highest grid point, ‡ the next larger grid point diverged "
        "(its loss became non-finite or exceeded 1000x its first value); '(k/n stable)': only k of its n runs "
        "stayed stable (no divergence, training loss never back above its starting value after the target).",
        "Seconds to target = steps to target x the single-model seconds per step, median of "
        f"{m.timing_rounds} timing rounds interleaved over the batch sizes (compile excluded); "
        "[95% in this run] combines the seeds' t interval of steps (on their logarithms: positive, asymmetric; "
        "none, [0, ∞], with one seed) with the rounds' interval of the median, which covers timing noise within "
        "this run (the rounds are interleaved), not a rerun on another day; ★ marks the "
        "fastest set: the batch sizes whose interval overlaps the fastest one's. samples/s and s/epoch come "
        "from the same rounds. Diverged (grid): the share of all (learning rate x seed) replicas that diverged.",
        f"Every metric is also evaluated at {m.coarse_evals} log-spaced points; the "
        f"{ev.coarse} split on a fixed subsample of {ev.coarse_examples} of its {ev.coarse_of} examples"
        + (
            f"; the training loss on a fixed sample of {ev.sample_examples} training rows at every fine point "
            "(oscillation)."
            if ev.sample_examples
            else "."
        ),
        measured_on(doc),
    ]
    extended = [
        f"B={s['row']['batch_size']}: {', '.join(table.num(v) for v in s['row']['extended'])}"
        for s in rows
        if s["row"].get("extended")
    ]
    said = []  # beside the numbers they concern, not only in the JSON
    if doc.checks and doc.checks.inexact:
        said.append(f"**Not exact** (`checks.inexact`): {'; '.join(doc.checks.inexact)}.")
    if failure_lines(doc):
        said.append(
            "**Failed after training** (`failures`; the training is kept, the columns they feed are empty): "
            + "; ".join(failure_lines(doc))
            + "."
        )
    notes[1:1] = said
    notes.insert(
        4 + len(said),
        "Learning rates added beyond the grid's edge because a batch size's best sat on it (up to "
        f"{grid.extend_grid} half-decades): {'; '.join(extended) if extended else 'none'}.",
    )

    steps = ladder_section(doc, ladder(doc) if levels is None else levels, noise_along(doc, rows))
    few = m.timing_rounds < MIN_ROUNDS  # no 95% interval of a median from so few rounds
    plain = f"seconds to target (no interval: {m.timing_rounds} timing rounds)"
    heads = [plain if few and k == "seconds_to_target" else h for k, h, _ in shown]
    return (
        "\n".join(
            table.markdown(heads, body)
            + notes
            + time_section(doc, rows)
            + memory_section(doc)
            + noise_section(rows, fit)
            + steps
        )
        + "\n"
    )


def time_section(doc: SweepDocument, rows: list[dict[str, Any]]) -> list[str]:
    """Where each batch size's wall time went, and the sweep's efficiency at it. A schema-1
    sweep also ran claim C11's demonstration at every batch size: its column shows that."""
    accounts = [(s, t) for s in rows if (t := time_accounting(doc.result(s["row"]["batch_size"]))) is not None]
    demo = any("c11_demo" in t for _, t in accounts)
    columns = [k for k in TIME_COLUMNS if demo or k != "c11_demo"]
    body, total = [], 0.0
    for s, t in accounts:
        total += t["wall"]
        cells = (table.num(t[k], 3) if k in t else "-" if k == "c11_demo" else table.num(0.0) for k in columns)
        body.append([str(s["row"]["batch_size"]), *cells, table.percent(s["row"]["efficiency"])])
    if not body:
        return []
    checks = doc.checks.seconds if doc.checks else None
    total += checks or 0.0
    c11 = (
        "c11_demo: claim C11's demonstration (a plain jax.jit step compiled for each batch shape of an epoch; "
        "'-' where it was counted in compile, before it had a column); "
        if demo
        else ""
    )
    return [
        "",
        "## Where the time went (seconds)",
        "",
        *table.markdown(["B", *columns, "efficiency"], body),
        "",
        "train: the compiled training calls alone, timed around blocking calls; evaluate: the fine and coarse "
        "evaluations; noise: the noise probes (best learning rate only); compile: building every program "
        f"the sweep runs; {c11}timing: the interleaved timing rounds; efficiency = train / (wall - compile"
        f"{' - c11_demo' if demo else ''}). "
        + (
            f"The pre-check before any training (every kind of program once, on a tiny batch): "
            f"{table.num(checks, 3)} s. "
            if checks
            else ""
        )
        + f"Sweep total {table.num(total, 3)} s.",
    ]


def memory_section(doc: SweepDocument) -> list[str]:
    """Memory per batch size (``analysis.memory``): XLA's plan of the training program (all the
    replicas it trains at once) and the process's peak resident memory after the batch size,
    with the line through the plans and the largest batch size it predicts within a few memory
    sizes."""
    from jbatch.analysis.memory import largest_within, line, rows

    found = [r for r in rows(doc) if r["planned"] is not None]
    if not found:
        return []
    mb = lambda v: "-" if v is None else table.num(v / 2**20, 3)  # noqa: E731
    body = [
        [str(r["batch_size"]), mb(r["argument"]), mb(r["output"]), mb(r["temp"]), mb(r["planned"]), mb(r["peak_rss"])]
        for r in found
    ]
    plans = {r["batch_size"]: r["planned"] for r in found}
    fitted = line(plans)
    said = ""
    if fitted is not None:
        intercept, slope = fitted
        within = ", ".join(f"{gib} GiB: B <= {largest_within(plans, gib * 2**30)}" for gib in (1, 16, 80))
        said = (
            f" A line through the plans: {mb(intercept)} MiB + {table.num(slope / 2**10, 3)} KiB per example of B, "
            f"so the largest batch size whose plan fits (the same program, on a device of that memory) is {within}."
        )
    return [
        "",
        "## Memory per batch size (MiB)",
        "",
        *table.markdown(["B", "arguments", "outputs", "temporaries", "planned", "process peak RSS"], body),
        "",
        "XLA's plan of the compiled training program (`memory_analysis()`), every replica of the grid at once: "
        "arguments (the training split, weights and optimizer state among them), outputs and temporaries; "
        "planned = arguments + outputs + temporaries - the outputs that alias arguments. Process peak RSS: the "
        "process's resident high-water mark once the batch size had trained ('-': not recorded by the sweep's "
        f"version).{said}",
    ]


def fit_sentence(fit: dict[str, Any] | None, rows: list[dict[str, Any]] | None = None) -> str:
    """The trade-off fit in one paragraph: parameters, interval, quality, bounds."""
    early = at_start(rows or [])
    start = (
        f" At B = {', '.join(map(str, early))} a seed met the target before any update (step 0): left out of "
        "the fit, which needs steps to fall with B (choose a harder target)."
        if early
        else ""
    )
    if fit is None:
        after = " after an update" if early else ""
        return f"Fewer than 3 batch sizes reached the target{after}: no trade-off fit.{start}"
    ci = fit["interval"]
    where = {
        "above": "above the largest batch size measured (steps fall as 1/B throughout)",
        "below": "below the smallest batch size measured (steps hardly fall with B)",
    }
    crit = (
        f"**B_crit = {table.num(fit['b_crit'], 3)}**"
        if fit["bound"] is None
        else f"**B_crit lies {where[fit['bound']]}**; the best fit puts it at {table.num(fit['b_crit'], 3)}"
    )
    bounds = (
        f" Points that are upper bounds (best LR on a grid edge): B = {', '.join(map(str, fit['bounds']))}."
        if fit["bounds"]
        else ""
    )
    return (
        f"Fit of S = S_min (1 + B_crit / B) to the {fit['points']} batch sizes that reached the target (least "
        f"squares on log steps; examples are steps x B, so E = E_min (1 + B / B_crit) with E_min = S_min B_crit "
        f"follows, no second fit): S_min = {table.num(fit['s_min'])} steps, E_min = {table.num(fit['e_min'])} "
        f"examples, {crit}, 95% bootstrap interval {interval_text(ci)} (the seeds resampled within each batch size, "
        f"{ci['draws']} draws; an end at the fit's search edge is unbounded: 0 or ∞). RMS error of the fit "
        f"{table.percent(fit['rms_rel_error'], 1)}, against "
        f"{table.percent(fit['rms_rel_error_perfect_scaling'], 1)} for perfect scaling alone (S ∝ 1/B) and "
        f"{table.percent(fit['rms_rel_error_no_scaling'], 1)} for no scaling (S constant).{bounds}{start}"
    )


def noise_section(rows: list[dict[str, Any]], fit: dict[str, Any] | None) -> list[str]:
    """The fitted steps/examples trade-off and the measured gradient noise scale."""
    out = ["", "## Critical batch size and gradient noise scale", "", fit_sentence(fit, rows)]
    measured = [s for s in rows if s["noise"]]
    if measured:
        body = []
        for s in measured:
            n, r = s["noise"], s["row"]
            at = "-" if n["at_target"] is None else f"{table.num(n['at_target'])} ({n['at_target_step']})"
            body.append(
                [
                    str(r["batch_size"]),
                    table.num(r["best_learning_rate"]),
                    table.num(n["b_simple"][0]),
                    at,
                    table.num(n["b_simple"][-1]),
                ]
            )
        out += [
            "",
            *table.markdown(
                ["B", "best LR", "B_simple, first checkpoint", "B_simple near the target (step)", "B_simple, end"], body
            ),
        ]
        near = [s["noise"]["at_target"] for s in measured if s["noise"]["at_target"] is not None]
        along = noise_averaged(rows)
        if near and fit is not None:
            med = float(np.median(near))
            average = (
                f"; averaged along training (the geometric mean over the checkpoints up to the target, "
                f"median over batch sizes; McCandlish et al. 2018 predict B_crit from this one): "
                f"{table.num(along)}, B_crit / B_simple = {table.num(fit['b_crit'] / along, 2)}"
                if along
                else ""
            )
            out += [
                "",
                f"B_simple near the target, median over batch sizes: {table.num(med)}; "
                f"B_crit / B_simple = {table.num(fit['b_crit'] / med, 2)}{average}. "
                "B_simple = tr(Sigma) / |G|^2 at "
                "log-spaced checkpoints of each batch size's best-learning-rate runs (mean over seeds); "
                "|G|^2 from the gradient of the whole training set (or of a fixed subsample, bias "
                "removed), tr(Sigma) from the spread of group gradients (unbiased; per-example gradients "
                "when the groups are single examples): see `noise_estimate` in the JSON.",
            ]
    return out


def csv_table(rows: list[dict[str, Any]]) -> str:
    """``table.csv``: the same rows, machine-readable; spreads become mean/std/n columns."""
    out = io.StringIO()
    header = []
    for key, _, how in COLUMNS:
        if how in ("spread", "seconds"):
            header += [f"{key}_mean", f"{key}_std", f"{key}_n"]
        elif how == "interval":
            header += [f"{key}_low", f"{key}_high"]
        else:
            header.append(key)
    header.append("efficiency")
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(header)
    for s in rows:
        r, line = s["row"], []
        for key, _, how in COLUMNS:
            v = r[key]
            if how in ("spread", "seconds"):
                line += [v["mean"], v["std"], v["n"]]
            elif how == "interval":
                line += v if v else [None, None]
            else:
                line.append(v)
        line.append(r["efficiency"])
        writer.writerow(["" if x is None else x for x in line])
    return out.getvalue()


def write_report(directory: str | Path) -> list[Path]:
    """Regenerates ``table.md``, ``table.csv`` and the plots of ``directory`` from its JSON."""
    directory = Path(directory)
    doc = read_sweep(directory)
    rows = summarize(doc)
    fit = sweep_fit(rows)
    levels = ladder(doc)  # one fit per level: computed once for the table and its plot
    written = [
        write_text(directory / "table.md", markdown_table(doc, rows, fit, levels)),
        write_text(directory / "table.csv", csv_table(rows)),
    ]
    written += write_plots(directory, doc, rows, fit)
    written.append(plot_ladder(directory, doc, levels, noise_along(doc, rows)))
    return written
