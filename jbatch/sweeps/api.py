"""``jbatch.sweep(...)``: a batch-size sweep of your own model, data and optimizer, from Python.

The call builds a ``Workload`` from what it is given (values, names or import paths),
runs the same resumable sweep as ``jbatch sweep`` and writes the same results directory
(``sweep.json``, tables, plots), so ``jbatch report``, ``jbatch claims`` and ``jbatch
compare`` work on it unchanged. It returns the sweep document.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from jbatch.core.batching import BatchSize
from jbatch.errors import ConfigError
from jbatch.report.sweep import write_report
from jbatch.sweeps.config import SweepConfig
from jbatch.sweeps.driver import run_sweep
from jbatch.sweeps.progress import SweepLog
from jbatch.workloads.workload import resolve, with_floor


def _label(value: Any) -> str:
    if isinstance(value, str):
        return value
    return f"{getattr(value, '__module__', 'user')}:{getattr(value, '__qualname__', type(value).__name__)}"


def sweep(
    model: str | Callable[[int], Any],
    data: Any,
    optimizer: str | Callable[..., Any] = "sgd",
    *,
    batch_sizes: Sequence[BatchSize] = (1, 8, 64, "full"),
    learning_rates: Sequence[float] = (0.01, 0.1, 1.0),
    seeds: Sequence[int] = (0, 1),
    target: tuple[str, float] = ("test_accuracy", 0.9),
    results_dir: str | Path = "runs",
    name: str | None = None,
    loss: str | Callable[..., Any] | None = None,
    force: bool = False,
    report: bool = True,
    progress: bool = True,
    **settings: Any,
) -> dict[str, Any]:
    """Sweeps ``model`` (``seed -> nnx.Module``, a built-in name or an import path) on
    ``data`` (``(x_train, y_train, x_test, y_test)`` arrays of any shapes, a ``Dataset``,
    or a data set name) with ``optimizer`` (a name such as ``"momentum"``, or a factory of
    hyperparameters ``(learning_rate=..., **kw) -> optax transformation``).

    ``settings`` are any other ``SweepConfig`` field (``momentum=(0.9, 0.99)``,
    ``schedule="cosine"``, ``budget_steps=500``, ...). Returns the sweep document, the one
    ``results_dir/<name>/sweep.json`` holds; ``name`` defaults to the data, model and
    optimizer (arrays are named by a hash of their content: the same arrays, the same
    name, from here or from the command line). Rerunning with more grid points (learning
    rates, seeds, batch sizes) trains only what is new. ``progress`` prints what the
    command line prints (skipped batch sizes, progress, failures); False: silent.
    """

    config, wl = _config(model, data, optimizer, batch_sizes, learning_rates, seeds, target, name, loss, settings)
    log = SweepLog() if progress else None
    directory, doc = run_sweep(config, Path(results_dir), force=force, workload=wl, on_start=log and log.start,
                               on_done=log and log.done)  # fmt: skip
    if report:
        write_report(directory)
    return doc


def _config(model: Any, data: Any, optimizer: Any, batch_sizes: Sequence[BatchSize], learning_rates: Sequence[float],
            seeds: Sequence[int], target: tuple[str, float], name: str | None, loss: Any,
            settings: dict[str, Any]) -> tuple[SweepConfig, Any]:  # fmt: skip
    """The sweep's config and workload from ``sweep``'s (or ``advise``'s) arguments."""
    metric, value = target
    settings = dict(settings)
    widths = tuple(settings.pop("widths", (256, 256)))
    wl = resolve(data, model, optimizer, loss, widths)
    fields = {f.name for f in dataclasses.fields(SweepConfig)}
    unknown = sorted(set(settings) - fields)
    if unknown:
        raise ConfigError(f"unknown sweep setting(s) {', '.join(unknown)}; known: {', '.join(sorted(fields))}")
    dataset = data if isinstance(data, str) else wl.data.name
    config = SweepConfig(
        name=name or "", dataset=dataset, model=_label(model), widths=widths, optimizer=_label(optimizer),
        loss="" if loss is None else _label(loss), batch_sizes=tuple(batch_sizes),
        learning_rates=tuple(float(v) for v in learning_rates), seeds=tuple(seeds), target_metric=metric,
        target_value=float(value), **{k: tuple(v) if isinstance(v, list) else v for k, v in settings.items()},
    )  # fmt: skip
    return with_floor(config, wl), wl


def advise(
    model: str | Callable[[int], Any],
    data: Any,
    optimizer: str | Callable[..., Any] = "sgd",
    *,
    batch_sizes: Sequence[BatchSize] = (1, 8, 64, "full"),
    learning_rates: Sequence[float] = (0.01, 0.1, 1.0),
    seeds: Sequence[int] = (0, 1),
    results_dir: str | Path = "runs",
    name: str | None = None,
    loss: str | Callable[..., Any] | None = None,
    trunk_batch: BatchSize | None = None,
    trunk_steps: int = 200,
    against: str | Path | None = None,
    **options: Any,
) -> dict[str, Any]:
    """``jbatch advise`` on ``model``, ``data`` and ``optimizer`` (as ``sweep`` takes them):
    the recommended batch size and warm-up for this device from timing rounds and branched
    short runs (``jbatch.sweeps.advise``), written to ``results_dir/advise-<name>/``
    (``advise.json``, ``advise.md``) and returned. ``options`` are ``advise``'s
    (``checkpoints``, ``examples``, ``multipliers``, ``tolerance``, ``rule``, ``lr_factors``,
    ``timing_rounds``) or any ``SweepConfig`` field; the trunk defaults to the smallest batch
    size; ``against`` a finished sweep of the same workload checks the advice against it."""
    from jbatch.core.batching import resolve_batch_size
    from jbatch.sweeps import advise as advice

    known = {"checkpoints", "examples", "multipliers", "tolerance", "rule", "lr_factors", "timing_rounds", "check"}
    kwargs = {k: options.pop(k) for k in list(options) if k in known}
    config, wl = _config(model, data, optimizer, batch_sizes, learning_rates, seeds, ("test_accuracy", 0.9), name,
                         loss, options)  # fmt: skip
    if against is not None:
        advice.check_against(Path(against), config)
    n = wl.data.num_train
    advice.check_candidates(config, n)
    trunk = resolve_batch_size(trunk_batch, n) if trunk_batch is not None else min(
        resolve_batch_size(b, n) for b in config.batch_sizes)  # fmt: skip
    doc = advice.advise(config, wl, trunk_batch=trunk, trunk_steps=trunk_steps,
                        against=None if against is None else Path(against), **kwargs)  # fmt: skip
    advice.write_advice(doc, Path(results_dir) / f"advise-{config.results_name}")
    return doc
