"""``jbatch.sweep(...)`` and ``jbatch.advise(...)`` from Python, and the one place where a sweep
or an advice is checked, run and published, whatever asked for it (``run_sweep_config``,
``run_advice_config``: the command line calls them too).

``sweep`` builds a ``Workload`` from what it is given (values, names or import paths),
runs the same resumable sweep as ``jbatch sweep`` and writes the same results directory
(``sweep.json``, tables, plots), so ``jbatch report``, ``jbatch claims`` and ``jbatch
compare`` work on it unchanged. It returns the sweep document.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from jbatch.config import SweepConfig, fitting
from jbatch.core.batching import BatchSize, resolve_batch_size
from jbatch.errors import ConfigError, FaultError
from jbatch.results import AdviceDocument, SweepDocument
from jbatch.sweeps.progress import SweepLog
from jbatch.workloads.workload import Workload, for_config, resolve, with_floor


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
) -> SweepDocument:
    """Sweeps ``model`` (``seed -> nnx.Module``, a built-in name or an import path) on
    ``data`` (``(x_train, y_train, x_test, y_test)`` arrays of any shapes, a ``Dataset``,
    or a data set name) with ``optimizer`` (a name such as ``"momentum"``, or a factory of
    hyperparameters ``(learning_rate=..., **kw) -> optax transformation``) and ``loss`` (by
    default the data's: cross-entropy for integer labels, else squared error; or any
    per-example function ``(outputs, targets) -> [B]``, such as optax's losses).

    ``settings`` are any other sweep setting by its key (``momentum=(0.9, 0.99)``,
    ``schedule="cosine"``, ``budget_steps=500``, ...; ``jbatch.config.KEYS``). Returns the
    sweep document, the one ``results_dir/<name>/sweep.json`` holds; ``name`` defaults to
    the data, model and optimizer (arrays are named by a hash of their content: the same
    arrays, the same name, from here or from the command line). Rerunning with more grid
    points (learning rates, seeds, batch sizes) trains only what is new. ``progress`` prints
    what the command line prints (skipped batch sizes, progress, failures); False: silent.
    """
    config, wl = _config(model, data, optimizer, batch_sizes, learning_rates, seeds, target, name, loss, settings)
    return run_sweep_config(config, Path(results_dir), workload=wl, force=force, report=report, progress=progress)[1]


def _config(
    model: Any,
    data: Any,
    optimizer: Any,
    batch_sizes: Sequence[BatchSize],
    learning_rates: Sequence[float],
    seeds: Sequence[int],
    target: tuple[str, float],
    name: str | None,
    loss: Any,
    settings: dict[str, Any],
) -> tuple[SweepConfig, Workload]:
    """The sweep's config and workload from ``sweep``'s (or ``advise``'s) arguments."""
    metric, value = target
    settings = dict(settings)
    widths = tuple(settings.pop("widths", (256, 256)))
    wl = resolve(data, model, optimizer, loss, widths)
    config = SweepConfig.of(
        name=name or "",
        dataset=data if isinstance(data, str) else wl.data.name,
        model=_label(model),
        widths=widths,
        optimizer=_label(optimizer),
        loss="" if loss is None else _label(loss),
        batch_sizes=tuple(batch_sizes),
        learning_rates=tuple(float(v) for v in learning_rates),
        seeds=tuple(seeds),
        target_metric=metric,
        target_value=float(value),
        **settings,
    )
    return with_floor(config, wl), wl


def run_sweep_config(
    config: SweepConfig,
    results_dir: Path,
    *,
    workload: Workload | None = None,
    force: bool = False,
    report: bool = True,
    progress: bool = True,
    wait: bool = False,
    processes: Any = None,
    fit_batch_sizes: bool = False,
) -> tuple[Path, SweepDocument]:
    """A sweep from its config: where it writes is checked first (in seconds, before the
    data are loaded or anything compiles), the directory is claimed (one writer), the
    workload resolved (``workload``: already resolved), the sweep run (or resumed) and its
    tables and plots written (``report``). ``fit_batch_sizes``: keep the batch sizes that fit
    the data (``--quick``). With several ``processes``, process 0 checks, claims and
    publishes; the others train their share."""
    from jbatch.report.sweep import write_report
    from jbatch.sweeps.driver import run_sweep
    from jbatch.sweeps.resultsdir import check_results, claim

    first = processes is None or processes.index == 0
    directory = check_results(results_dir, config.results_name) if first else results_dir / config.results_name
    with claim(directory, wait=wait) if first else contextlib.nullcontext():
        workload = workload or for_config(config)  # names and import paths become values here, at the edge
        if fit_batch_sizes:
            config = fitting(config, workload.data.num_train)
        config = with_floor(config, workload)
        log = SweepLog() if progress else None
        directory, doc = run_sweep(
            config,
            results_dir,
            force=force,
            workload=workload,
            processes=processes,
            on_start=log and log.start,
            on_done=log and log.done,
        )
        if first and report:
            try:
                write_report(directory)
            except OSError as e:
                raise FaultError(
                    f"the sweep is kept in {directory}/sweep.json, but its tables could not be written "
                    f"({e.strerror or e}); run `jbatch report {directory}` once they can"
                ) from None
    return directory, doc


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
    progress: bool = True,
    **options: Any,
) -> AdviceDocument:
    """``jbatch advise`` on ``model``, ``data`` and ``optimizer`` (as ``sweep`` takes them):
    the recommended batch size and warm-up for this device from timing rounds and branched
    short runs (``jbatch.sweeps.advise``), written to ``results_dir/advise-<name>/``
    (``advise.json``, ``advise.md``) and returned. ``options`` are ``advise``'s
    (``checkpoints``, ``examples``, ``multipliers``, ``tolerance``, ``rule``, ``lr_factors``,
    ``timing_rounds``, ``check``, ``memory_cap``) or any sweep setting; the trunk defaults to the smallest batch
    size; ``against`` a finished sweep of the same workload checks the advice against it.
    ``progress`` prints a line at each phase and checkpoint (standard error); False: silent."""
    known = {
        *("checkpoints", "examples", "multipliers", "tolerance", "rule", "lr_factors", "timing_rounds", "check"),
        "memory_cap",
    }
    kwargs = {k: options.pop(k) for k in list(options) if k in known}
    config, wl = _config(
        model, data, optimizer, batch_sizes, learning_rates, seeds, ("test_accuracy", 0.9), name, loss, options
    )
    return run_advice_config(
        config,
        Path(results_dir),
        workload=wl,
        trunk_batch=trunk_batch,
        trunk_steps=trunk_steps,
        against=None if against is None else Path(against),
        say=(lambda line: print(line, file=sys.stderr, flush=True)) if progress else None,
        **kwargs,
    )


def run_advice_config(
    config: SweepConfig,
    results_dir: Path,
    *,
    workload: Workload | None = None,
    trunk_batch: BatchSize | None = None,
    trunk_steps: int = 200,
    against: Path | None = None,
    **options: Any,
) -> AdviceDocument:
    """An advice from its config: where it goes and the sweep it is checked ``against``
    (loaded once, refused when of another workload) are checked before the data are loaded;
    then the candidates against the data, the advice (``sweeps.advise.advise``) and its
    ``advise.json`` and ``advise.md`` (``report.advice.write_advice``)."""
    from jbatch.report.advice import markdown, write_advice
    from jbatch.sweeps import advise as advice
    from jbatch.sweeps.resultsdir import check_results, claim, rescue

    directory = check_results(results_dir, f"advise-{config.results_name}")
    swept = None if against is None else advice.check_against(against, config)
    with claim(directory):  # one writer per directory, as a sweep's
        doc = _advice(config, workload, trunk_batch, trunk_steps, against, swept, options)
        try:
            write_advice(doc, directory)
        except (OSError, ConfigError) as e:  # the advice trained for minutes: printed, kept, and said where
            if options.get("say"):
                options["say"](markdown(doc))
            raise rescue(doc, f"advise-{config.results_name}", e, f"nothing was written to {directory}") from None
    return doc


def _advice(
    config: SweepConfig,
    workload: Workload | None,
    trunk_batch: BatchSize | None,
    trunk_steps: int,
    against: Path | None,
    swept: Any,
    options: dict[str, Any],
) -> AdviceDocument:
    """The candidates checked against the data, then the advice (``sweeps.advise.advise``)."""
    from jbatch.sweeps import advise as advice

    workload = workload or for_config(config)
    n = workload.data.num_train
    for b in config.grid.batch_sizes:
        resolve_batch_size(b, n)
    if not config.grid.learning_rates:
        raise ConfigError("advise needs a learning rate (the trunk's): --lrs")
    trunk = (
        resolve_batch_size(trunk_batch, n)
        if trunk_batch is not None
        else min(resolve_batch_size(b, n) for b in config.grid.batch_sizes)
    )
    return advice.advise(
        config, workload, trunk_batch=trunk, trunk_steps=trunk_steps, against=against, swept=swept, **options
    )
