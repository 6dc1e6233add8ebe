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

from jbatch.errors import ConfigError
from jbatch.store import read_json, write_text
from jbatch.study import DOCUMENT
from jbatch.summary import batch_size_summary

COLUMNS = [  # (csv name, markdown header, how to show it)
    ("regime", "regime", "text"),
    ("batch_size", "B", "int"),
    ("steps_per_epoch", "steps/epoch", "int"),
    ("best_learning_rate", "best LR", "g"),
    ("samples_per_second", "samples/s", "k"),
    ("seconds_per_epoch", "s/epoch", "s"),
    ("steps_to_target", "steps to target", "spread"),
    ("epochs_to_target", "epochs to target", "spread"),
    ("examples_to_target", "examples to target", "spread"),
    ("seconds_to_target", "seconds to target", "spread"),
    ("best_test_accuracy", "best test acc", "spread"),
    ("final_train_loss", "final train loss", "spread"),
    ("epoch_of_min_test_loss", "epoch of min test loss", "spread"),
    ("diverged_fraction", "diverged (grid)", "pct"),
]


def load_document(directory: str | Path) -> dict[str, Any]:
    """The sweep document of ``directory``, checked enough to report on."""
    path = Path(directory) / DOCUMENT
    doc = read_json(path)
    if not isinstance(doc, dict) or doc.get("kind") != "jbatch.sweep" or "batch_sizes" not in doc:
        raise ConfigError(f"{path} is not a jbatch sweep document")
    if not doc["batch_sizes"]:
        raise ConfigError(f"{path} holds no finished batch size yet")
    return doc


def summarize(doc: dict[str, Any]) -> list[dict[str, Any]]:
    """One summary per finished batch size, smallest first."""
    cfg = doc["config"]
    results = sorted(doc["batch_sizes"].values(), key=lambda r: r["batch_size"])
    try:
        return [batch_size_summary(r, cfg["target_metric"], cfg["target_value"], doc["num_train"]) for r in results]
    except (KeyError, TypeError, IndexError) as e:
        raise ConfigError(f"the sweep document is incomplete or damaged ({type(e).__name__}: {e})") from None


def _fmt(value: Any, how: str, reached: int = 0, seeds: int = 0) -> str:
    if how == "spread":
        if value["n"] == 0:
            return "not reached" if seeds else "-"
        mean, std = value["mean"], value["std"]
        text = f"{_num(mean)} ± {_sd(std)}" if value["n"] > 1 else _num(mean)
        return text + (f" ({value['n']}/{seeds})" if seeds and value["n"] < seeds else "")
    if value is None:
        return "-"
    return {
        "text": str,
        "int": lambda v: f"{int(v)}",
        "g": lambda v: f"{v:.4g}",
        "k": lambda v: f"{v / 1e3:.1f}k",
        "s": lambda v: f"{v:.4f}",
        "pct": lambda v: f"{100 * v:.0f}%",
    }[how](value)


def _num(v: float) -> str:
    if v == 0 or 1e-3 <= abs(v) < 1e5:
        return f"{v:.4g}" if abs(v) < 100 else f"{v:.0f}"
    return f"{v:.3g}"


def _sd(v: float) -> str:
    """A spread to two significant digits, without exponents where avoidable."""
    if v >= 100:
        return f"{float(f'{v:.2g}'):.0f}"
    return f"{v:.2g}" if v == 0 or v >= 1e-3 else f"{v:.1e}"


def _target_columns(name: str) -> bool:
    return name.endswith("_to_target")


def markdown_table(doc: dict[str, Any], rows: list[dict[str, Any]]) -> str:
    """``table.md``: the table, then the notes that say how to read it."""
    cfg, meta = doc["config"], doc["metadata"]
    lines = ["| " + " | ".join(h for _, h, _ in COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    for s in rows:
        r = s["row"]
        cells = []
        for key, _, how in COLUMNS:
            seeds = r["seeds"] if _target_columns(key) else 0
            cells.append(_fmt(r[key], how, r["reached"], seeds))
        lines.append("| " + " | ".join(cells) + " |")
    higher = cfg["target_metric"].endswith("accuracy")
    notes = [
        "",
        f"Sweep `{doc['name']}`: {cfg['dataset']} ({doc['num_train']} training examples), "
        f"model {cfg['model']}, optimizer {cfg['optimizer']}, seeds {cfg['seeds']}, "
        f"learning-rate grid {cfg['learning_rates']}.",
        f"Target: {cfg['target_metric']} {'>=' if higher else '<='} {cfg['target_value']}. Each batch size is "
        "shown at its own best learning rate (most seeds reaching the target, then fewest mean steps, "
        "then lowest final test loss); to-target columns are mean ± std over the seeds that reached it "
        "(n/seeds when not all did). Steps to target are resolved to the evaluation cadence.",
        "Seconds to target = steps to target x the measured single-model seconds per step at that batch "
        "size (median of timed epochs, compile excluded); samples/s and s/epoch come from the same timing. "
        "Diverged (grid): the share of all (learning rate x seed) replicas whose loss became non-finite.",
        f"Measured on {meta['device_kind']} ({meta['backend']}, {meta['device_count']} device(s)), "
        f"CPU {meta['cpu']}, jax {meta['versions']['jax']}, flax {meta['versions']['flax']}, "
        f"optax {meta['versions']['optax']}, {meta['date']}, commit {str(meta['commit']['id'])[:10]}.",
    ]
    return "\n".join(lines + notes + noise_section(rows)) + "\n"


def noise_section(rows: list[dict[str, Any]]) -> list[str]:
    """The fitted steps/examples trade-off and the measured gradient noise scale."""
    from jbatch.summary import sweep_fit

    fit = sweep_fit(rows)
    out = ["", "## Critical batch size and gradient noise scale", ""]
    if fit is None:
        out.append("Fewer than 3 batch sizes reached the target: no trade-off fit.")
    else:
        out.append(
            f"Fit of S = S_min (1 + B_noise / B) and E = E_min (1 + B / B_noise) to the {fit['points']} batch sizes "
            f"that reached the target: S_min = {_num(fit['s_min'])} steps, E_min = {_num(fit['e_min'])} examples, "
            f"**B_crit = E_min / S_min = {_num(fit['b_crit'])}** (B_noise from the steps curve alone: "
            f"{_num(fit['b_noise_from_steps'])}); fit quality R^2 of logs {fit['steps_r2_log']:.3f} (steps), "
            f"{fit['examples_r2_log']:.3f} (examples), RMS relative error {fit['steps_rms_rel_error']:.1%} / "
            f"{fit['examples_rms_rel_error']:.1%}{'' if fit['physical'] else '; NOT physical (a negative parameter)'}."
        )
    measured = [s for s in rows if s["noise"]]
    if measured:
        out += ["", "| B | best LR | B_simple, first checkpoint | B_simple near the target (step) | B_simple, end |",
                "|---|---|---|---|---|"]  # fmt: skip
        for s in measured:
            n, r = s["noise"], s["row"]
            at = "-" if n["at_target"] is None else f"{_num(n['at_target'])} ({n['at_target_step']})"
            out.append(f"| {r['batch_size']} | {r['best_learning_rate']:.4g} | {_opt(n['b_simple'][0])} | {at} | "
                       f"{_opt(n['b_simple'][-1])} |")  # fmt: skip
        near = [s["noise"]["at_target"] for s in measured if s["noise"]["at_target"] is not None]
        if near and fit is not None:
            med = float(np.median(near))
            out += ["", f"B_simple near the target, median over batch sizes: {_num(med)}; "
                        f"B_crit / B_simple = {fit['b_crit'] / med:.2f}. B_simple = tr(Sigma) / |G|^2 is computed "
                        "exactly from per-example gradients over the whole training set, at log-spaced checkpoints "
                        "of each batch size's best-learning-rate runs (mean over seeds)."]  # fmt: skip
    return out


def _opt(v: float | None) -> str:
    return "-" if v is None else _num(v)


def csv_table(rows: list[dict[str, Any]]) -> str:
    """``table.csv``: the same rows, machine-readable; spreads become mean/std/n columns."""
    out = io.StringIO()
    header = []
    for key, _, how in COLUMNS:
        header += [f"{key}_mean", f"{key}_std", f"{key}_n"] if how == "spread" else [key]
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(header)
    for s in rows:
        r, line = s["row"], []
        for key, _, how in COLUMNS:
            v = r[key]
            line += [v["mean"], v["std"], v["n"]] if how == "spread" else [v]
        writer.writerow(["" if x is None else x for x in line])
    return out.getvalue()


def update_readme(readme: str | Path, directory: str | Path) -> bool:
    """Replaces the README block between ``<!-- table: DIR -->`` and ``<!-- /table -->``
    with ``DIR/table.md``, so the README never holds a hand-typed figure. Returns whether
    the README has such a block."""
    readme, directory = Path(readme), Path(directory)
    text = readme.read_text()
    marker = f"<!-- table: {directory.as_posix().rstrip('/')} -->"
    if marker not in text:
        return False
    head, rest = text.split(marker, 1)
    _, tail = rest.split("<!-- /table -->", 1)
    table = (directory / "table.md").read_text()
    write_text(readme, f"{head}{marker}\n{table}<!-- /table -->{tail}")
    return True


def write_report(directory: str | Path) -> list[Path]:
    """Regenerates ``table.md``, ``table.csv`` and the plots of ``directory`` from its JSON."""
    from jbatch.plot import write_plots  # matplotlib is imported only when plotting

    directory = Path(directory)
    doc = load_document(directory)
    rows = summarize(doc)
    written = [
        write_text(directory / "table.md", markdown_table(doc, rows)),
        write_text(directory / "table.csv", csv_table(rows)),
    ]
    written += write_plots(directory, doc, rows)
    return written
