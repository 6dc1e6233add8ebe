"""The results directory of a sweep: one JSON document, rewritten atomically after each
batch size, so a sweep can be killed at any moment and resumed where it stopped.

``results/<name>/sweep.json`` is the source of truth (``jbatch.results.SweepDocument``);
tables and plots are derived from it (``jbatch.report.sweep``). A directory made with
another config, with other data, or on another kind of device, is refused rather than mixed
or overwritten; a damaged document is refused in one line, as every reader refuses it.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import msgspec

from jbatch.config import SweepConfig
from jbatch.errors import ConfigError, Interrupted, check_interrupt
from jbatch.results import SWEEP, dump, load
from jbatch.results.records import BatchSizeResult, Device, Metadata, SweepDocument, SweepPart
from jbatch.sweeps.batch import run_batch_size
from jbatch.sweeps.checks import check_sweep
from jbatch.sweeps.clock import attempt
from jbatch.sweeps.distributed import Processes, barrier, clear_barriers
from jbatch.sweeps.grid import missing
from jbatch.sweeps.metadata import environment_metadata
from jbatch.sweeps.precheck import precheck
from jbatch.sweeps.resultsdir import check_results, claim, rescue
from jbatch.sweeps.session import Session
from jbatch.sweeps.timing import step_timing, time_steps
from jbatch.workloads.workload import Workload

GRIDS = ("batch_sizes", "learning_rates", "seeds", "momentum", "b2", "weight_decay")  # a sweep may grow these


def grown(key: str, stored: dict[str, Any], wanted: dict[str, Any]) -> bool:
    """Whether ``wanted`` only adds points to ``stored``'s grid ``key`` (a grid that was
    empty, the optimizer's default, cannot grow: that would be another sweep)."""
    old, new = stored.get(key) or (), wanted.get(key) or ()
    return key in GRIDS and bool(old) and set(map(str, old)) <= set(map(str, new))


def open_document(directory: Path, session: Session, meta: Metadata) -> SweepDocument:
    """The existing document of ``directory`` if it matches the session's config, data and
    this device, a new one if there is none; anything else is a ``ConfigError`` and nothing
    is touched. A config that only adds grid points (batch sizes, learning rates, seeds,
    other swept values: ``grown``) matches: the sweep then trains only what is new."""
    config, ds = session.config, session.workload.data
    path = directory / SWEEP
    device = Device(backend=meta.backend, device_kind=meta.device_kind)
    if not path.exists():
        return SweepDocument(
            name=config.results_name,
            config=config,
            device=device,
            metadata=meta,
            num_train=ds.num_train,
            data_sha256=ds.fingerprint,
            data=ds.info or None,
        )
    doc = load(path, SweepDocument)  # a setting added to jbatch since counts as its default there
    stored, wanted = doc.config.flat(), config.flat()
    diff = sorted(k for k in wanted if stored[k] != wanted[k] and not grown(k, stored, wanted))
    if diff:
        detail = "; ".join(f"{k}: {_shown(stored[k])!r} there, {_shown(wanted[k])!r} now" for k in diff)
        raise ConfigError(
            f"{directory} holds a sweep with another config ({detail}); choose another --name or remove that directory"
        )
    if doc.device != device:
        raise ConfigError(
            f"{directory} was measured on {_shown(doc.device)}, this is {_shown(device)}; results "
            "from different devices are not mixed: choose another --name"
        )
    if doc.data_sha256 and doc.data_sha256 != ds.fingerprint or doc.num_train != ds.num_train:
        raise ConfigError(
            f"{directory} holds a sweep of other data ({doc.num_train} training examples, "
            f"sha256 {str(doc.data_sha256)[:12]}; now {ds.num_train}, {ds.fingerprint[:12]}): choose "
            "another --name"
        )
    doc.config = config  # the same config, now with every current setting named
    doc.data_sha256 = ds.fingerprint
    return doc


def _shown(value: Any) -> Any:
    """A setting or record as its JSON shows it (lists, mappings)."""
    return msgspec.json.decode(msgspec.json.encode(value))


def run_sweep(
    config: SweepConfig,
    results_dir: Path,
    *,
    force: bool = False,
    workload: Workload,
    on_start: Callable[[int, bool], Callable[[int, int], None] | None] | None = None,
    on_done: Callable[[int, BatchSizeResult], None] | None = None,
    processes: Processes | None = None,
    session: Session | None = None,
) -> tuple[Path, SweepDocument]:
    """Runs (or resumes) a sweep into ``results_dir/<name>/sweep.json``.

    Finished batch sizes are skipped unless ``force``. Before anything trains, the
    pre-check (``jbatch.sweeps.precheck``) runs every kind of program once on a tiny batch.
    ``on_start(batch_size, skipped)`` may return a per-chunk progress callback;
    ``on_done(batch_size, result)`` hears of each batch size once it is written (with its
    ``failures``: what failed after its training, recorded instead of losing it). With
    several ``processes``, each trains its share of the batch sizes and process 0 merges
    them (``jbatch.sweeps.distributed``). ``session``: one to share compiled programs with
    (built here by default). Returns the directory and the document (as merged, on process 0).
    """
    processes = processes or Processes()
    sizes = check_sweep(config, workload.data)
    if processes.index != 0:
        directory = Path(results_dir) / config.results_name
        return _run_sweep(config, directory, force, workload, sizes, on_start, on_done, processes, session)
    directory = check_results(Path(results_dir), config.results_name)
    with claim(directory):  # one writer per directory (re-entrant: the command line claims it first)
        return _run_sweep(config, directory, force, workload, sizes, on_start, on_done, processes, session)


def _run_sweep(
    config: SweepConfig,
    directory: Path,
    force: bool,
    workload: Workload,
    sizes: list[int],
    on_start: Any,
    on_done: Any,
    processes: Processes,
    session: Session | None,
) -> tuple[Path, SweepDocument]:
    meta = environment_metadata()
    if session is None:
        session = Session.open(config, workload)
    if processes.index == 0:
        merge_parts(directory, open_document(directory, session, meta))  # left by an interrupted run
        clear_barriers(processes, directory / "parts")
    barrier("jbatch-sweep-start", processes, directory / "parts")
    doc = open_document(directory, session, meta)  # every process checks config, data and device
    part = SweepPart(index=processes.index, metadata=meta)
    alone = processes.count == 1
    store = doc.batch_sizes if alone else part.batch_sizes
    mine, trained = processes.share(sizes), False

    on_disk = sorted(int(b) for b in doc.batch_sizes)  # what the document on disk holds

    def write() -> None:  # atomic: a kill leaves the last complete document
        path = directory / SWEEP if alone else directory / "parts" / f"process-{processes.index}.json"
        try:
            dump(path, doc if alone else part)
        except OSError as e:  # kept what can be kept, said where, in one line
            kept = (
                f"{path} still holds batch sizes {on_disk} (a rerun resumes from them)"
                if on_disk
                else f"{path} holds nothing yet"
            )
            raise rescue(doc if alone else part, config.results_name, e, kept) from None
        on_disk[:] = sorted(int(b) for b in store)

    try:  # Ctrl-C: one line saying what is kept and how to resume (the document on disk is always whole)
        earlier = {} if force else {b: doc.batch_sizes[str(b)] for b in mine if str(b) in doc.batch_sizes}
        todo = [b for b in mine if b not in earlier or missing(config, earlier[b])]
        if todo or any(earlier[b].timing is None for b in mine):
            start = time.perf_counter()
            doc.checks = precheck(session, todo or mine)  # seconds, before any training
            doc.checks.seconds = time.perf_counter() - start
        for b in mine:
            skipped = b not in todo
            progress = on_start(b, skipped) if on_start else None
            if skipped:
                store[str(b)] = doc.batch_sizes[str(b)]
                continue

            def chunk(done: int, total: int, progress=progress) -> None:
                check_interrupt()  # a Ctrl-C that a library swallowed stops the sweep here
                if progress is not None:
                    progress(done, total)

            result = run_batch_size(session, b, on_chunk=chunk, previous=earlier.get(b))
            result.metadata = meta
            store[str(b)] = result
            trained = True
            write()
            check_interrupt()
            if on_done:
                on_done(b, result)
        if trained or any(store[str(b)].timing is None for b in mine):
            results = [store[str(b)] for b in mine]
            attempt(results[0], "timing", time_share, session, results)
            write()
        barrier("jbatch-sweep-done", processes, directory / "parts")
        if processes.count > 1 and processes.index == 0:
            doc = open_document(directory, session, meta)
            merge_parts(directory, doc)
        return directory, doc
    except KeyboardInterrupt:
        done = (
            f"batch sizes {on_disk} are finished and kept in {directory}/{SWEEP}"
            if on_disk
            else f"no batch size had finished: nothing was written to {directory}/{SWEEP}"
        )
        raise Interrupted(f"{done}; run the same command again to resume") from None


def timing_caps(results: list[BatchSizeResult], rounds: int, share: float = 0.25) -> dict[int, int]:
    """Steps timed per round at each batch size: at most 256, and few enough that the
    ``rounds + 1`` single-model calls cost about ``share`` of the K replicas' training steps
    or less (at least 16 steps, so a round is still long enough to time).

    Examples:
      >>> from jbatch.results import convert
      >>> r = convert({"batch_size": 256, "steps_per_epoch": 6, "budget_steps": 312, "counted": {
      ...     "examples_per_epoch": [], "updates_per_epoch": []}, "replicas": [{"learning_rate": 1, "seed": 0,
      ...     "curve": {}}] * 3}, BatchSizeResult)
      >>> timing_caps([r], 7)
      {256: 30}
    """
    return {
        r.batch_size: int(min(256, max(16, math.ceil(share * r.budget_steps * len(r.replicas) / (rounds + 1)))))
        for r in results
    }


def time_share(session: Session, results: list[BatchSizeResult]) -> None:
    """Times one model's steps at every batch size of ``results`` in interleaved rounds
    (``timing.time_steps``) and sets each result's ``timing`` (every round kept, the median
    and its interval, the first call apart). A re-timing (a resumed sweep) replaces the last one."""
    rounds = session.config.measurement.timing_rounds
    timed = time_steps(session, [r.batch_size for r in results], rounds, timing_caps(results, rounds))
    for r in results:
        r.timing = step_timing(timed[r.batch_size])


def merge_parts(directory: Path, doc: SweepDocument) -> bool:
    """Moves every ``parts/process-*.json`` into ``doc`` (results and the metadata of the
    process that measured them), writes it, then deletes the parts (in that order: a kill
    in between leaves parts that merge again, harmlessly). Returns whether there were any."""
    paths = sorted((directory / "parts").glob("process-*.json"))
    for path in paths:
        part = load(path, SweepPart)
        doc.batch_sizes.update(part.batch_sizes)
        doc.processes = (doc.processes or {}) | {str(part.index): part.metadata}
    if paths:
        dump(directory / SWEEP, doc)
        for path in paths:
            path.unlink()
    return bool(paths)
