"""The results directory of a sweep: one JSON document, rewritten atomically after each
batch size, so a sweep can be killed at any moment and resumed where it stopped.

``results/<name>/sweep.json`` is the source of truth; tables and plots are derived from
it (``jbatch.report.sweep``). A directory made with another config, or on another kind of
device, is refused rather than mixed or overwritten.
"""

from __future__ import annotations

import dataclasses
import json
import math
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from jbatch.errors import ConfigError, Interrupted, check_interrupt
from jbatch.store import DOCUMENT, read_json, write_json
from jbatch.sweeps.batch import run_batch_size
from jbatch.sweeps.checks import check_sweep
from jbatch.sweeps.clock import attempt
from jbatch.sweeps.config import SweepConfig
from jbatch.sweeps.distributed import Processes, barrier, clear_barriers
from jbatch.sweeps.grid import missing
from jbatch.sweeps.metadata import environment_metadata
from jbatch.sweeps.optimizer import init_single
from jbatch.sweeps.precheck import precheck
from jbatch.sweeps.resultsdir import check_results, claim, rescue
from jbatch.sweeps.timing import shape_demo, step_timing, time_steps
from jbatch.workloads.data import to_device
from jbatch.workloads.workload import Workload


def config_dict(config: SweepConfig) -> dict[str, Any]:
    """The config as it is stored (JSON types), for comparison with a stored one."""
    return json.loads(json.dumps(dataclasses.asdict(config)))


def _device(meta: dict[str, Any]) -> dict[str, Any]:
    # What makes numbers comparable: the kind of device. Each batch size trains on one
    # device whatever the count, and every result keeps its full metadata anyway.
    return {k: meta[k] for k in ("backend", "device_kind")}


GRIDS = ("batch_sizes", "learning_rates", "seeds", "momentum", "b2", "weight_decay")  # a sweep may grow these


def grown(key: str, stored: dict[str, Any], wanted: dict[str, Any]) -> bool:
    """Whether ``wanted`` only adds points to ``stored``'s grid ``key`` (a grid that was
    empty, the optimizer's default, cannot grow: that would be another sweep)."""
    old, new = stored.get(key) or [], wanted.get(key) or []
    return key in GRIDS and bool(old) and set(map(str, old)) <= set(map(str, new))


def open_document(directory: Path, config: SweepConfig, meta: dict[str, Any]) -> dict[str, Any]:
    """The existing document of ``directory`` if it matches ``config`` and this device, a
    new one if there is none; anything else is a ``ConfigError`` and nothing is touched.
    A config that only adds grid points (batch sizes, learning rates, seeds, other swept
    values: ``grown``) matches: the sweep then trains only what is new."""
    path = directory / DOCUMENT
    if not path.exists():
        return {"kind": "jbatch.sweep", "name": config.results_name, "config": config_dict(config),
                "device": _device(meta), "metadata": meta, "batch_sizes": {}}  # fmt: skip
    doc = read_json(path)
    if not isinstance(doc, dict) or doc.get("kind") != "jbatch.sweep":
        raise ConfigError(f"{path} is not a jbatch sweep document; it was left untouched")
    # a setting added to jbatch after the document was written counts as its default there
    stored = config_dict(SweepConfig()) | doc.get("config", {})
    wanted = config_dict(config)
    diff = sorted(k for k in set(stored) | set(wanted)
                  if stored.get(k) != wanted.get(k) and not grown(k, stored, wanted))  # fmt: skip
    if diff:
        detail = "; ".join(f"{k}: {stored.get(k)!r} there, {wanted.get(k)!r} now" for k in diff)
        raise ConfigError(
            f"{directory} holds a sweep with another config ({detail}); choose another --name or remove that directory"
        )
    if doc.get("device") != _device(meta):
        raise ConfigError(
            f"{directory} was measured on {doc.get('device')}, this is {_device(meta)}; "
            "results from different devices are not mixed: choose another --name"
        )
    doc["config"] = wanted  # the same config, now with every current setting named
    return doc


def run_sweep(
    config: SweepConfig,
    results_dir: Path,
    *,
    force: bool = False,
    workload: Workload,
    on_start: Callable[[int, bool], Callable[[int, int], None] | None] | None = None,
    on_done: Callable[[int, dict[str, Any]], None] | None = None,
    processes: Processes | None = None,
) -> tuple[Path, dict[str, Any]]:
    """Runs (or resumes) a sweep into ``results_dir/<name>/sweep.json``.

    Finished batch sizes are skipped unless ``force``. Before anything trains, the
    pre-check (``jbatch.sweeps.precheck``) runs every kind of program once on a tiny batch.
    ``on_start(batch_size, skipped)`` may return a per-chunk progress callback;
    ``on_done(batch_size, result)`` hears of each batch size once it is written (with its
    ``failures``: what failed after its training, recorded instead of losing it). With
    several ``processes``, each trains its share of the batch sizes and process 0 merges
    them (``jbatch.sweeps.distributed``). Returns the directory and the document (as merged, on
    process 0).
    """
    processes = processes or Processes()
    ds = workload.data
    sizes = check_sweep(config, ds)
    if processes.index != 0:
        directory = Path(results_dir) / config.results_name
        return _run_sweep(config, directory, force, workload, sizes, on_start, on_done, processes)
    directory = check_results(Path(results_dir), config.results_name)
    with claim(directory):  # one writer per directory (re-entrant: the command line claims it first)
        return _run_sweep(config, directory, force, workload, sizes, on_start, on_done, processes)


def _run_sweep(config: SweepConfig, directory: Path, force: bool, workload: Workload, sizes: list[int],
               on_start: Any, on_done: Any, processes: Processes) -> tuple[Path, dict[str, Any]]:  # fmt: skip
    ds = workload.data
    meta = environment_metadata()
    if processes.index == 0:
        merge_parts(directory, open_document(directory, config, meta))  # left by an interrupted run
        clear_barriers(processes, directory / "parts")
    barrier("jbatch-sweep-start", processes, directory / "parts")
    doc = open_document(directory, config, meta)  # every process checks config and device
    doc["num_train"], doc["data_sha256"] = ds.num_train, ds.fingerprint
    if ds.info:
        doc["data"] = ds.info  # what the data is beyond its arrays (a language's exact entropy and floor)
    placed = to_device(ds.x_train, ds.y_train), to_device(ds.x_test, ds.y_test)  # once for every batch size
    part = {"index": processes.index, "metadata": meta, "batch_sizes": {}}
    store = doc["batch_sizes"] if processes.count == 1 else part["batch_sizes"]
    mine, cache, trained = processes.share(sizes), {}, False

    on_disk = sorted(int(b) for b in doc["batch_sizes"])  # what the document on disk holds

    def write() -> None:  # atomic: a kill leaves the last complete document
        path = directory / DOCUMENT if processes.count == 1 else directory / "parts" / f"process-{processes.index}.json"
        try:
            write_json(path, doc if processes.count == 1 else part, indent=None)
        except OSError as e:  # kept what can be kept, said where, in one line
            kept = (f"{path} still holds batch sizes {on_disk} (a rerun resumes from them)" if on_disk else
                    f"{path} holds nothing yet")  # fmt: skip
            raise rescue(doc if processes.count == 1 else part, config.results_name, e, kept) from None
        on_disk[:] = sorted(int(b) for b in store)

    try:  # Ctrl-C: one line saying what is kept and how to resume (the document on disk is always whole)
        earlier = {} if force else {b: doc["batch_sizes"][str(b)] for b in mine if str(b) in doc["batch_sizes"]}
        todo = [b for b in mine if b not in earlier or missing(config, earlier[b])]
        if todo or any("timing" not in earlier[b] for b in mine):
            start = time.perf_counter()
            doc["checks"] = precheck(config, workload, todo or mine, cache)  # seconds, before any training
            doc["checks"]["seconds"] = time.perf_counter() - start
        for b in mine:
            skipped = b not in todo
            progress = on_start(b, skipped) if on_start else None
            if skipped:
                store[str(b)] = doc["batch_sizes"][str(b)]
                continue
            def chunk(done: int, total: int, progress=progress) -> None:
                check_interrupt()  # a Ctrl-C that a library swallowed stops the sweep here
                if progress is not None:
                    progress(done, total)

            result = run_batch_size(config, workload, b, on_chunk=chunk, placed=placed, cache=cache,
                                    previous=earlier.get(b))  # fmt: skip
            start = time.perf_counter()
            demo = attempt(result, "shape_demo", shape_demo, init_single(config, workload, cache), workload.loss,
                           placed[0], b, config.remainder)  # fmt: skip
            result["compilations"] = demo or {}
            demo = time.perf_counter() - start  # almost all compilation, of programs only claim C11 needs
            result["time"] = result["time"] | {"c11_demo": demo, "wall": result["time"]["wall"] + demo}
            result["metadata"] = meta
            store[str(b)] = result
            trained = True
            write()
            check_interrupt()
            if on_done:
                on_done(b, result)
        if trained or any("timing" not in store[str(b)] for b in mine):
            results = [store[str(b)] for b in mine]
            attempt(results[0], "timing", time_share, config, workload, placed[0], results, cache)
            write()
        barrier("jbatch-sweep-done", processes, directory / "parts")
        if processes.count > 1 and processes.index == 0:
            doc = open_document(directory, config, meta)
            doc["num_train"] = ds.num_train
            merge_parts(directory, doc)
        return directory, doc
    except KeyboardInterrupt:
        done = f"batch sizes {on_disk} are finished and kept in {directory}/{DOCUMENT}" if on_disk else \
            f"no batch size had finished: nothing was written to {directory}/{DOCUMENT}"  # fmt: skip
        raise Interrupted(f"{done}; run the same command again to resume") from None


def timing_caps(results: list[dict[str, Any]], rounds: int, share: float = 0.25) -> dict[int, int]:
    """Steps timed per round at each batch size: at most 256, and few enough that the
    ``rounds + 1`` single-model calls cost about ``share`` of the K replicas' training steps
    or less (at least 16 steps, so a round is still long enough to time).

    Example:
      >>> timing_caps([{"batch_size": 256, "budget_steps": 312, "replicas": [0] * 3}], 7)
      {256: 30}
    """
    return {r["batch_size"]: int(min(256, max(16, math.ceil(share * r["budget_steps"] * len(r["replicas"])
                                                            / (rounds + 1)))))
            for r in results}  # fmt: skip


def time_share(config: SweepConfig, wl: Workload, train: Any, results: list[dict[str, Any]],
               cache: dict | None = None) -> None:  # fmt: skip
    """Times one model's steps at every batch size of ``results`` in interleaved rounds
    (``timing.time_steps``) and adds to each result its ``timing`` (every round kept, the
    median and its interval, the first call apart) and the padded epoch's compilation counts
    (claim C11). A re-timing (a resumed sweep) replaces the last one."""
    sizes = [r["batch_size"] for r in results]
    timed = time_steps(init_single(config, wl, cache), wl.loss, train, sizes, config.timing_rounds,
                       config.remainder, timing_caps(results, config.timing_rounds),
                       microbatch=config.microbatch or None)  # fmt: skip
    for r in results:
        t = timed[r["batch_size"]]
        r["timing"] = step_timing(t) | {k: t[k] for k in ("epoch_seconds", "first_call_seconds")}
        r["compilations"] = r["compilations"] | {"padded_epoch_compilations": t["first_call_compilations"],
                                                 "padded_epoch_round_compilations": t["round_compilations"],
                                                 "padded_epoch_calls": 1 + len(t["epoch_seconds"])}  # fmt: skip


def merge_parts(directory: Path, doc: dict[str, Any]) -> bool:
    """Moves every ``parts/process-*.json`` into ``doc`` (results and the metadata of the
    process that measured them), writes it, then deletes the parts (in that order: a kill
    in between leaves parts that merge again, harmlessly). Returns whether there were any."""
    paths = sorted((directory / "parts").glob("process-*.json"))
    for path in paths:
        part = read_json(path)
        doc["batch_sizes"].update(part["batch_sizes"])
        doc.setdefault("processes", {})[str(part["index"])] = part["metadata"]
    if paths:
        write_json(directory / DOCUMENT, doc, indent=None)
        for path in paths:
            path.unlink()
    return bool(paths)
