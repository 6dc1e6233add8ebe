"""The site's pages as Markdown, from the results documents alone (through the results contract)
and the report modules' own tables: the index (every workload, and all of them on one plot),
a page per sweep, per advice, the claims and the benchmarks. Figures are Plotly
specifications (``figures``) embedded as JSON in a ``div`` that the site's script draws."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from jbatch.analysis.ladder import ladder
from jbatch.analysis.summary import summarize, sweep_fit
from jbatch.results import AdviceDocument, SweepDocument, read_advice, read_sweep
from jbatch.site import figures

Page = tuple[str, str]  # (path under docs/, Markdown)


def embed(fig: dict[str, Any], name: str) -> str:
    """A figure as the page holds it: a ``div`` with its trace count and its JSON; a figure with
    no point to draw (a sweep of one batch size has no B_crit ladder) is a sentence instead."""
    if not any(len(t.get("x") or ()) for t in fig["data"]):
        return f"*{fig['layout']['title']['text']}: nothing to draw in these results.*"
    data = json.dumps(fig, separators=(",", ":"), allow_nan=False).replace("</", "<\\/")
    return (
        f'<div class="jbatch-figure" id="fig-{name}" data-traces="{len(fig["data"])}">'
        f'<script type="application/json">{data}</script></div>'
    )


def _ci(ci: Any) -> str:
    lo, hi = (ci.get("low"), ci.get("high")) if isinstance(ci, dict) else (ci or [None, None])
    return "" if lo is None else f" [{lo:.3g}, {'inf' if hi is None else f'{hi:.3g}'}]"


def machine(meta: Any) -> str:
    """The machine and software a document was measured on, in one line."""
    where = meta.cpu if meta.device_kind == "cpu" else meta.device_kind
    return f"{where} x {meta.cpu_count} ({meta.backend}), jax {meta.versions.get('jax', '?')}, {meta.date[:10]}"


def sweep_page(name: str, doc: SweepDocument, rows: list[dict[str, Any]]) -> Page:
    """One sweep: its figures (steps, examples and seconds to target, curves, noise scale,
    B_crit ladder, time), its table and where it was measured."""
    from jbatch.report.sweep import markdown_table

    levels = ladder(doc)  # rows: ``summarize(doc)``, computed once for the index and this page
    fit = sweep_fit(rows)
    target = doc.config.target
    wl = doc.config.workload
    figs = [
        ("steps", figures.to_target(rows, fit, "steps_to_target", "steps to target")),
        ("examples", figures.to_target(rows, fit, "examples_to_target", "examples to target")),
        ("seconds", figures.seconds_to_target(rows)),
        ("curves", figures.curves(doc, rows, "test_loss")),
        ("noise", figures.noise_scale(rows, fit)),
        ("ladder", figures.ladder(levels, target.higher_is_better)),
        ("time", figures.time_spent(doc)),
    ]
    if target.metric != "test_loss":
        figs.insert(4, ("metric", figures.curves(doc, rows, target.metric)))
    text = [
        f"# {name}",
        "",
        f"{wl.dataset} / {wl.model} / {wl.optimizer}, target {target.metric} {target.value:g}, "
        f"{doc.num_train} training examples, seeds {list(doc.config.grid.seeds)}. Measured on {machine(doc.metadata)}. "
        f"B_crit from the fit: " + (f"{fit['b_crit']:.3g}{_ci(fit['interval'])}" if fit else "no fit") + ".",
        "",
        *(embed(f, f"{name}-{k}") + "\n" for k, f in figs),
        markdown_table(doc, rows, fit, levels),
    ]
    return f"sweeps/{name}.md", "\n".join(text)


def advice_page(name: str, doc: AdviceDocument) -> Page:
    """One advice: B* along the trunk, the prediction beside the sweep, its report and, checked
    against a sweep, its row of the finder table (``report.advice.finder_row``)."""
    from jbatch.report import table
    from jbatch.report.advice import FINDER_HEADER, finder_row, markdown

    body = markdown(doc).split("\n", 1)[1]  # its own title replaced by the page's
    if doc.against and doc.against.reached:
        body += "\n".join(
            ["", "## Against the batch-size finders people use", "", *table.markdown(FINDER_HEADER, [finder_row(name, doc)])]
        )
        body += (
            "\n\nEach cell: the rule's batch size and its measured seconds to target over the sweep's fastest [95%]: "
            "largest that fits (Lightning, accelerate), most samples/s (DeepSpeed), the tuning playbook's, the "
            "noise scale (McCandlish et al.), B = 32, and jbatch advise.\n"
        )
    return f"advice/{name}.md", "\n".join(
        [
            f"# Advice: {name}",
            "",
            f"Measured on {machine(doc.metadata)}.",
            "",
            embed(figures.b_star(doc), f"{name}-bstar") + "\n",
            embed(figures.prediction(doc), f"{name}-prediction") + "\n",
            body,
        ]
    )


def index_page(
    sweeps: dict[str, SweepDocument], summaries: dict[str, list], advices: dict[str, AdviceDocument], more: list[str]
) -> Page:
    """Every workload in one table and on one plot."""
    from jbatch.report import table

    fitted, rows = {}, []
    for name, doc in sweeps.items():
        rows_of = summaries[name]
        fit = sweep_fit(rows_of)
        fitted[name] = (rows_of, fit)
        fastest = [s["row"]["batch_size"] for s in rows_of if s["row"]["fastest"]]
        advice = advices.get(name)
        rows.append(
            [
                f"[{name}](sweeps/{name}.md)",
                f"{doc.config.workload.dataset} / {doc.config.workload.model} / {doc.config.workload.optimizer}",
                f"{fit['b_crit']:.3g}{_ci(fit['interval'])}" if fit else "-",
                str(fastest),
                f"[{advice.recommended}](advice/{name}.md)" if advice else "-",
                machine(doc.metadata),
            ]
        )
    header = ["workload", "data / model / optimizer", "B_crit [95%]", "fastest set", "advice", "measured on"]
    return "index.md", "\n".join(
        [
            "# jbatch results",
            "",
            "What batch size to train with on this hardware, and what it costs in time and in accuracy: every "
            "published sweep of jbatch, built from its JSON by `jbatch site`.",
            "",
            *table.markdown(header, rows),
            "",
            embed(figures.across(fitted), "across") + "\n",
            *([f"See also: {', '.join(more)}."] if more else []),
        ]
    )


def claims_page(results: Path) -> Page | None:
    """The claims with their verdicts (``report.claims``), evidence linked to the sweep pages."""
    from jbatch.report.claims import claims_text, published

    directories, advice, demo = published(results)
    if not directories:
        return None
    text = claims_text(directories, advice, demo)
    text = re.sub(r"\]\(advise-([\w.-]+)/advise\.md\)", r"](advice/\1.md)", text)
    return "claims.md", re.sub(r"\]\(([\w.-]+)/[\w.-]+\.png\)", r"](sweeps/\1.md)", text)


def benchmarks_page(results: Path) -> Page | None:
    """The throughput and time-to-target benchmarks (``report.throughput``): a figure per
    workload's throughput and one of time to target, then the report's tables."""
    path = results / "throughput" / "benchmark.json"
    if not path.exists():
        return None
    from jbatch.report.throughput import convergence, load_benchmark, markdown, measurements

    doc = load_benchmark(path)
    figs = [embed(f, f"throughput-{w}") + "\n" for w, f in figures.throughput(measurements(doc))]
    cases = convergence(doc)
    if cases:
        figs.append(embed(figures.time_to_target(cases), "time-to-target") + "\n")
    text = re.sub(r"!\[[^\]]*\]\([^)]*\)", "", markdown(doc))  # its PNG is the figures above
    title, rest = text.split("\n", 1) if text.startswith("#") else ("# Benchmarks", text)
    return "benchmarks.md", "\n".join([title, "", *figs, rest])


def compare_pages(results: Path, sweeps: dict[str, SweepDocument]) -> list[Page]:
    """A comparison page (``report.compare``) for each group of ``results``' sweeps of one workload."""
    from jbatch.report.compare import comparison
    from jbatch.results import differences

    groups: list[list[tuple[Path, SweepDocument]]] = []
    for name, doc in sweeps.items():
        d = results / name
        home = next((g for g in groups if not differences(g[0][1], doc)), None)
        if home is None:
            groups.append([(d, doc)])
        else:
            home.append((d, doc))
    out = []
    for group in (g for g in groups if len(g) > 1):
        name = "-vs-".join(d.name for d, _ in group)
        text, _, plot = comparison([d for d, _ in group])
        title, rest = text.split("\n", 1)
        figs = [embed(figures.compared(plot, k), f"{name}-{k}") + "\n" for k in ("steps", "seconds")] if plot else []
        out.append(
            (f"compare/{name}.md", "\n".join([f"# Comparison: {', '.join(d.name for d, _ in group)}", "", *figs, rest]))
        )
    return out


def pages(results: Path) -> tuple[list[Page], dict[str, list[str]]]:
    """Every page of ``results`` and the navigation (section: paths)."""
    sweeps = {d.name: read_sweep(d) for d in sorted(p.parent for p in results.glob("*/sweep.json"))}
    advices = {
        d.name.removeprefix("advise-"): read_advice(d)
        for d in sorted(p.parent for p in results.glob("advise-*/advise.json"))
    }
    extra = [p for p in (claims_page(results), benchmarks_page(results)) if p is not None]
    more = [f"[the {p.removesuffix('.md')}]({p})" for p, _ in extra]
    summaries = {name: summarize(doc) for name, doc in sweeps.items()}
    out = [index_page(sweeps, summaries, advices, more)]
    out += [sweep_page(name, doc, summaries[name]) for name, doc in sweeps.items()]
    out += [advice_page(name, doc) for name, doc in advices.items()]
    out += compare_pages(results, sweeps)
    out += extra
    nav = {
        "Sweeps": [p for p, _ in out if p.startswith("sweeps/")],
        "Advice": [p for p, _ in out if p.startswith("advice/")],
        "Compare": [p for p, _ in out if p.startswith("compare/")],
        "Results": [p for p, _ in out if p in ("claims.md", "benchmarks.md")],
    }
    return out, nav
