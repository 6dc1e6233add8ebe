"""One batch size of a sweep: every (learning rate x seed) replica trained together by one
vmapped, compiled program, measured cheaply enough that the sweep's time goes to training.

Batch sizes are compared at their own best learning rate (Shallue et al. 2018), so each
batch size gets the whole learning-rate grid. What is measured, and how often:

* the target's split (the test split for a test-accuracy target) at every fine point of the
  cadence (``schedule.layout``: about 1% of the budget, single steps early on for large
  batches), so steps to target are resolved exactly as before, and its loss comes free;
* the other split at ``coarse_evals`` points, on a fixed subsample of at most
  ``eval_examples`` (recorded);
* every step's loss (the program returns them anyway): oscillation, mini-batch means;
* the gradient noise scale, only for the replicas the report uses (the best learning rate):
  every replica's state is kept at the probe checkpoints, the probes run at the end.

Where the wall time went is recorded (``time``): the training calls alone (timed around
blocking calls), evaluations, noise probes, compilation and the rest.
``run_batch_size`` returns plain data; ``jbatch.study`` writes it to disk and
``jbatch.summary`` turns it into verdicts.
"""

from __future__ import annotations

import collections
import contextlib
import functools
import itertools
import math
import time
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from jbatch.batching import steps_per_epoch
from jbatch.config import SweepConfig
from jbatch.data import to_device
from jbatch.engine import CompileCounter, compile_program, replica_group, timed_call
from jbatch.epoch import make_evaluate, make_needed, make_train_chunk
from jbatch.errors import ConfigError
from jbatch.guard import init_guard, settle
from jbatch.noise import gradient_moments
from jbatch.optim import beta2_for_batch, hyperparameters, inject, with_schedule
from jbatch.replica import init_replicas, stack
from jbatch.schedule import Layout, budget_steps, chunk_batches, epoch_tables, layout, probe_chunks, with_coarse
from jbatch.step import init_train_state, make_eval_step, make_train_step
from jbatch.summary import HIGHER_IS_BETTER, best_setting, replica_summary, setting
from jbatch.workload import Workload

TIME_PARTS = ("train", "evaluate", "noise", "compile", "other")


class Clock:
    """Where one batch size's wall time goes: seconds per part, each measured around a
    blocking call (``engine.timed_call``); ``compile`` is every XLA compilation while the
    clock runs (as JAX reports them: the programs, and the eager operations that
    initialising models compiles); ``other`` is the rest of the wall time."""

    def __init__(self) -> None:
        self.start = time.perf_counter()
        self.parts: dict[str, float] = collections.defaultdict(float)
        self.compiles = CompileCounter().__enter__()
        self.building = 0.0  # tracing, lowering and compiling of compile_program calls
        self.inside = 0.0  # the XLA compile seconds among those (not to count twice)

    @contextlib.contextmanager
    def compiling(self):
        """Times building programs (trace, lower, compile) as compilation."""
        start, before = time.perf_counter(), self.compiles.seconds
        yield
        self.building += time.perf_counter() - start
        self.inside += self.compiles.seconds - before

    def call(self, part: str, program: Callable[..., Any], *args: Any) -> Any:
        out, seconds = timed_call(program, *args)
        self.parts[part] += seconds
        return out

    def summary(self) -> dict[str, float]:
        wall = time.perf_counter() - self.start
        self.compiles.__exit__()
        parts = {k: self.parts[k] for k in TIME_PARTS if k not in ("other", "compile")}
        parts["compile"] = self.building + self.compiles.seconds - self.inside
        return parts | {"other": wall - sum(parts.values()), "wall": wall}


def replica_grid(config: SweepConfig) -> list[tuple[dict[str, float], int]]:
    """Every replica of a batch size: each combination of the swept hyperparameters
    (``SweepConfig.axes``: learning rate first), with each seed."""
    axes = config.axes()
    combos = itertools.product(*axes.values())
    return [(dict(zip(axes, values, strict=True)), seed) for values in combos for seed in config.seeds]


def optimizer_for(config: SweepConfig, wl: Workload) -> tuple[Any, dict[str, float]]:
    """The sweep's transformation (one object for every batch size: it is a static part of
    the programs) and its injected hyperparameters' starting values: the swept ones, the
    schedule's budget, and beta2 when the half-life rule sets it per batch size."""
    factory = with_schedule(wl.optimizer, config.schedule, config.warmup, config.final_fraction)
    known = hyperparameters(factory)
    axes = config.axes()
    for name in axes:
        if name not in known:
            raise ConfigError(f"optimizer {wl.optimizer_name} has no hyperparameter {name!r} to sweep; "
                              f"it takes {', '.join(known)}")  # fmt: skip
    values = {k: v[0] for k, v in axes.items()}
    if "budget" in known and factory is not wl.optimizer:
        values["budget"] = 1.0
    if config.beta2_reference:
        if "b2" not in known:
            raise ConfigError(f"the beta2 rule needs an optimizer with a b2 hyperparameter; {wl.optimizer_name} "
                              f"takes {', '.join(known)}")  # fmt: skip
        values.setdefault("b2", known["b2"])
    return inject(factory, values), values


def replica_values(config: SweepConfig, wl: Workload, hyper: dict[str, float], batch_size: int,
                   budget: int, start: dict[str, float]) -> dict[str, float]:  # fmt: skip
    """One replica's injected hyperparameters at ``batch_size``: its swept values, the
    budget of the schedule, and beta2 by the half-life rule (from the swept or default b2)."""
    values = dict(hyper)
    if "budget" in start:
        values["budget"] = float(budget)
    if config.beta2_reference:
        values["b2"] = beta2_for_batch(hyper.get("b2", start["b2"]), batch_size, config.beta2_reference)
    return values


def init_single(config: SweepConfig, wl: Workload, cache: dict | None = None) -> Callable[[], Any]:
    """A fresh single-model training state (seed 0, the grid's first values), for timing
    and demonstrations."""
    cache = {} if cache is None else cache
    tx, _ = cache.setdefault("tx", optimizer_for(config, wl))
    return lambda: init_train_state(wl.model(0), tx)


def fixed_subsample(n: int, limit: int, seed: int = 0) -> np.ndarray | None:
    """Sorted indices of a fixed random subsample of ``limit`` of ``n`` rows, or None for
    all of them (``limit`` 0, or not smaller than ``n``)."""
    if not limit or limit >= n:
        return None
    return np.sort(np.random.default_rng(seed).choice(n, limit, replace=False))


def run_batch_size(
    config: SweepConfig,
    wl: Workload,
    batch_size: int,
    on_chunk: Callable[[int, int], None] | None = None,
    placed: tuple[Any, Any] | None = None,
    replica_batch: int | None | str = "auto",
    cache: dict | None = None,
    prune: bool = True,
) -> dict[str, Any]:
    """Trains every (learning rate x seed) replica at ``batch_size`` and returns the raw
    curves: per replica, the fine points (the target's split, mini-batch loss means) and
    the coarse ones (the other split), divergence (exact step), oscillation and, at the
    best learning rate, the noise scale along training; per batch size, the examples and
    updates per epoch as the program counted them, and where the time went.

    ``placed``: the (train, test) data already on the device (``to_device``), shared by a
    sweep's batch sizes. ``replica_batch``: how many replicas run vmapped together ("auto":
    ``engine.replica_group``; None: all, as accelerators do). ``cache``: compiled programs
    that do not depend on the batch size, shared by a sweep's batch sizes. ``prune``: stop
    the fine evaluations of replicas that can no longer be the best (``Watch``); False
    evaluates every replica at every fine point (the reference the tests compare with).
    """
    clock = Clock()
    cache = {} if cache is None else cache
    ds = wl.data
    n = ds.num_train
    spe = steps_per_epoch(n, batch_size, config.remainder)
    lay = with_coarse(layout(spe, budget_steps(config, spe), config.evals, batch_size), config.coarse_evals)
    grid = replica_grid(config)
    loss_fn = wl.loss
    group = replica_group(batch_size) if replica_batch == "auto" else replica_batch

    train, test = placed or (to_device(ds.x_train, ds.y_train), to_device(ds.x_test, ds.y_test))
    fine_split = config.target_metric.split("_")[0]  # "test" or "train"
    coarse_split = "train" if fine_split == "test" else "test"
    data = {"train": train, "test": test}
    rows = fixed_subsample(int(data[coarse_split][0].shape[0]), config.eval_examples)
    coarse_data = data[coarse_split] if rows is None else tuple(a[rows] for a in data[coarse_split])

    tx, start_values = cache.setdefault("tx", optimizer_for(config, wl))  # one object: a static part of programs
    whole = batch_size == n and config.remainder == "keep"
    probes = probe_chunks(lay, config.noise_checkpoints)
    evaluate = make_evaluate(make_eval_step(loss_fn, wl.classification))
    size = len(grid)  # every round runs this many replicas, so every round reuses the same programs
    built: dict[str, Any] = {}

    def program(key, fn, *args, in_axes, donate=()):
        if key not in cache:
            with clock.compiling():
                cache[key] = compile_program(fn, *args, in_axes=in_axes, donate_argnums=donate, replica_batch=group)
        return cache[key]

    def train_round(entries: list[tuple[dict[str, float], int]], prune: bool = prune) -> dict[str, Any]:
        """Trains ``entries`` (swept values, seed) in the ``size`` replica slots; unused slots are
        parked: marked diverged from the start, so on CPU they skip their steps."""
        parked = size - len(entries)
        slots = entries + [entries[0]] * parked
        seeds = [g[1] for g in slots]
        values = [replica_values(config, wl, h, batch_size, lay.total_steps, start_values) for h, _ in slots]
        states = init_replicas(wl.model, tx, seeds, values)
        guards = [init_guard()] * len(entries) + [init_guard()._replace(diverged=jnp.ones((), bool))] * parked
        carry = (states, stack(guards))
        tables = functools.lru_cache(maxsize=1)(  # every chunk of an epoch cuts from the same tables
            lambda epoch: epoch_tables(seeds, epoch, n, batch_size, config.remainder)
        )

        def batches(c: int):
            if whole:  # full batch ignores order and indices: send placeholders
                k = lay.chunk_steps
                return np.zeros((size, k, 1), np.int32), np.ones((k, 1), bool), np.ones(k, bool)
            return chunk_batches(lay, c, batch_size, tables)

        if not built:
            with clock.compiling():
                built["train"] = compile_program(
                    make_train_chunk(make_train_step(loss_fn), whole=whole), carry, train, *batches(0),
                    in_axes=(0, None, 0, None, None), donate_argnums=(0,), replica_batch=group)  # fmt: skip
            built["fine"] = program(("eval", fine_split, group), make_needed(evaluate), states, data[fine_split],
                                    np.ones(size, bool), in_axes=(0, None, 0))  # fmt: skip
            built["coarse"] = program(("eval-coarse", coarse_split, group), make_needed(evaluate), states,
                                      coarse_data, np.ones(size, bool), in_axes=(0, None, 0))  # fmt: skip
            built["settle"] = program(("settle", group), settle, states, states, states, carry[1], carry[1],
                                      in_axes=(0, 0, 0, 0, 0), donate=(1, 2))  # fmt: skip
            built["copy"] = program(("copy", group), lambda c: jax.tree.map(lambda v: v.copy(), c), carry,
                                    in_axes=(0,))  # fmt: skip
        record = Recorder(size, lay, fine_split, coarse_split)
        checkpoints: list[tuple[int, Any]] = []  # (step, every replica's state on the host)
        real = np.arange(size) < len(entries)
        watch = Watch([(h if i < len(entries) else {"parked": i}, s) for i, (h, s) in enumerate(slots)],
                      config.target_metric.split("_", 1)[1], config.target_value,
                      HIGHER_IS_BETTER[config.target_metric], prune=prune)  # fmt: skip

        def fine(everyone: bool) -> None:
            need = real.copy() if everyone else watch.need(record.diverged) & real
            metrics = jax.device_get(clock.call("evaluate", built["fine"], carry[0], data[fine_split], need))
            record.fine(record.steps_done, metrics)
            watch.update(record.steps_done, metrics, need, record.diverged)

        fine(everyone=True)
        record.coarse(0, clock.call("evaluate", built["coarse"], carry[0], coarse_data, real))
        start = clock.call("other", built["copy"], carry)  # the segment's first state
        prev = clock.call("other", built["copy"], carry)  # and the previous segment's
        for c in range(lay.num_chunks):
            idx, mask, active = batches(c)
            carry, out = clock.call("train", built["train"], carry, train, idx, mask, active)
            record.chunk(c, jax.device_get(out), active)
            if lay.coarse[c]:  # end of a segment: exploded replicas go back to a finite state
                state, prev_state = clock.call("other", built["settle"], start[0], prev[0], carry[0], start[1],
                                               carry[1])  # fmt: skip
                carry, prev = (state, carry[1]), (prev_state, carry[1])
                start = clock.call("other", built["copy"], carry)
            if lay.evaluate[c]:
                fine(everyone=lay.coarse[c])
                if on_chunk is not None:
                    on_chunk(c + 1, lay.num_chunks)
            if lay.coarse[c]:
                record.coarse(record.steps_done, clock.call("evaluate", built["coarse"], carry[0], coarse_data, real))
            if probes[c]:
                checkpoints.append((record.steps_done, clock.call("noise", jax.device_get, carry[0])))
        guard = jax.device_get(carry[1])
        out = _result(slots, values, record, guard, batch_size, lay)
        out["replicas"] = out["replicas"][: len(entries)]
        for rep, at in zip(out["replicas"], watch.pruned_at, strict=False):
            rep["pruned_at_step"] = at
        out["counted"] = record.counted(guard)
        out["checkpoints"] = [(step, jax.tree.map(lambda v: v[: len(entries)], st)) for step, st in checkpoints]
        return out

    result = train_round(grid)
    checkpoints = [result.pop("checkpoints")]
    for r in result["replicas"]:
        r["extension"] = 0
    added, round_ = 0, 0
    while added < config.extend_grid:
        more = extension(config, result, min(len(grid) // len(config.seeds), config.extend_grid - added))
        if not more:
            break
        round_, added = round_ + 1, added + len(more)
        extra = train_round([(setting_values, seed) for setting_values in more for seed in config.seeds])
        checkpoints.append(extra.pop("checkpoints"))
        for r in extra["replicas"]:
            r["extension"] = round_
        result["replicas"] += extra["replicas"]
    result["replica_batch"] = group
    result["evaluation"] = {"fine": fine_split, "coarse": coarse_split, "coarse_examples": int(coarse_data[0].shape[0]),
                            "coarse_of": int(data[coarse_split][0].shape[0])}  # fmt: skip
    summaries = [replica_summary(r, result, config.target_metric, config.target_value) for r in result["replicas"]]
    best = best_setting(summaries)
    chosen = [r for r, rep in enumerate(result["replicas"]) if setting(rep) == best]
    best_round = result["replicas"][chosen[0]]["extension"]  # a setting is trained in one round
    offset = sum(rep["extension"] < best_round for rep in result["replicas"])  # replicas are listed round by round
    slots = [r - offset for r in chosen]
    if any(summaries[r]["coarse_steps"] for r in chosen):
        # The best's fine evaluations were skipped (a setting that finished first later blew up): train it
        # again, the same trajectory, every fine point evaluated, and keep that record instead.
        again = train_round([(dict(best), result["replicas"][r]["seed"]) for r in chosen], prune=False)
        for r, rep in zip(chosen, again["replicas"], strict=True):
            result["replicas"][r] = rep | {"extension": best_round, "replayed": True}
        checkpoints[best_round], slots = again["checkpoints"], list(range(len(chosen)))
    if checkpoints[best_round]:
        noise = probe_replicas(checkpoints[best_round], slots, train, loss_fn, config, cache, clock)
        for r, rep in zip(chosen, noise["replicas"], strict=True):
            result["replicas"][r]["noise"] = rep
        result["noise_estimate"] = {"examples": noise["examples"], "group": noise["group"], "of": n}
    result["time"] = clock.summary()
    return result


def extension(config: SweepConfig, result: dict[str, Any], points: int) -> list[dict[str, float]]:
    """Where the learning-rate grid must widen (Shallue et al. 2018 compare batch sizes at
    their best learning rate, which is only found if the grid brackets it): when the best
    setting's learning rate is the lowest or the highest tried with its other values, the
    next ``points`` half-decades beyond it, as settings; none when it is interior (a run
    beyond it exists: it was worse, diverged or missed the target)."""
    summaries = [replica_summary(r, result, config.target_metric, config.target_value) for r in result["replicas"]]
    best = dict(best_setting(summaries))
    others = {k: v for k, v in best.items() if k != "learning_rate"}
    tried = sorted({s["learning_rate"] for s in summaries
                    if all(dict(s["setting"]).get(k) == v for k, v in others.items())})  # fmt: skip
    lr = best["learning_rate"]
    if lr == tried[-1]:
        sign = 1
    elif lr == tried[0] and len(tried) > 1:
        sign = -1
    else:
        return []
    return [others | {"learning_rate": float(f"{lr * 10 ** (sign * 0.5 * k):.4g}")} for k in range(1, points + 1)]


def probe_replicas(checkpoints, chosen, train, loss_fn, config: SweepConfig, cache, clock) -> dict[str, Any]:
    """The gradient noise scale of the replicas ``chosen`` at every checkpoint, on a fixed
    shuffled subsample of at most ``noise_examples`` training examples (all of them, when
    there are no more), from ``noise_groups`` group gradients (``noise.gradient_moments``)."""
    n = int(train[0].shape[0])
    rows = fixed_subsample(n, config.noise_examples, seed=1)
    order = np.random.default_rng(2).permutation(n if rows is None else len(rows))  # a random partition into groups
    rows = order if rows is None else rows[order]
    data = tuple(a[rows] for a in train)
    group = max(1, len(rows) // config.noise_groups)
    probe = functools.partial(gradient_moments, loss_fn=loss_fn, group=group, population=len(rows) == n)
    pick = lambda s: jax.tree.map(lambda v: v[np.asarray(chosen)], s)  # noqa: E731  host arrays: no device op
    key = ("probe", len(chosen), int(data[0].shape[0]))
    if key not in cache:
        with clock.compiling():
            cache[key] = compile_program(probe, pick(checkpoints[0][1]), data, in_axes=(0, None),
                                         replica_batch=replica_group(len(data[0])))  # fmt: skip
    values = [jax.device_get(clock.call("noise", cache[key], pick(state), data)) for _, state in checkpoints]
    steps = [s for s, _ in checkpoints]
    replicas = [{"step": steps} | {k: [_round(v[k][i]) for v in values] for k in ("b_simple", "grad_sq", "trace_sigma")}
                for i in range(len(chosen))]  # fmt: skip
    return {"replicas": replicas, "examples": int(data[0].shape[0]), "group": group}


class Watch:
    """Which replicas still need the target's split evaluated at every fine point.

    Not those that reached the target (their steps to target are known) or diverged, and
    not those of a learning rate that can no longer be the best: once some learning rate
    has every seed at the target (mean ``S*`` steps), another whose unreached seeds would
    need, even reaching it right now, more than ``S*`` steps on average can neither reach
    it with more seeds nor in fewer steps (``summary.best_learning_rate``). Such replicas
    are still evaluated at the coarse points; ``pruned_at`` records when they stopped, so a
    target they reach later is known to the coarse resolution only (and the report says so
    should one of them end up the best, which takes a best whose runs blow up later).
    """

    def __init__(self, grid, metric: str, target: float, higher: bool, prune: bool = True):
        keys = [tuple(sorted(h.items())) for h, _ in grid]  # a setting: the swept hyperparameters' values
        self.lrs = np.asarray([sorted(set(keys)).index(k) for k in keys])
        self.metric, self.target, self.higher, self.prune = metric, target, higher, prune
        self.reached_at = np.full(len(grid), -1)
        self.pruned_at: list[int | None] = [None] * len(grid)

    def need(self, diverged: np.ndarray) -> np.ndarray:
        return (self.reached_at < 0) & ~diverged & np.asarray([p is None for p in self.pruned_at])

    def update(self, step: int, metrics: dict[str, Any], evaluated: np.ndarray, diverged: np.ndarray) -> None:
        value = np.asarray(metrics[self.metric], float)
        with np.errstate(invalid="ignore"):
            hit = evaluated & ~diverged & ((value >= self.target) if self.higher else (value <= self.target))
        self.reached_at[hit & (self.reached_at < 0)] = step
        if not self.prune:
            return
        done = [lr for lr in set(self.lrs) if np.all(self.reached_at[self.lrs == lr] >= 0)]
        if not done:
            return
        best = min(float(np.mean(self.reached_at[self.lrs == lr])) for lr in done)
        for lr in set(self.lrs) - set(done):
            group = self.lrs == lr
            bound = np.where(self.reached_at[group] >= 0, self.reached_at[group], step).mean()
            if bound > best:
                for r in np.flatnonzero(group & (self.reached_at < 0)):
                    if self.pruned_at[r] is None:
                        self.pruned_at[r] = step


class Recorder:
    """Host-side bookkeeping of one batch size's run: fine and coarse evaluation points,
    the per-epoch examples and updates the program counted, and each replica's
    oscillation and mini-batch loss means, from every step's loss."""

    def __init__(self, replicas: int, lay: Layout, fine_split: str, coarse_split: str):
        self.lay, self.fine_split, self.coarse_split = lay, fine_split, coarse_split
        self.fine_points: list[dict[str, Any]] = []
        self.coarse_points: list[dict[str, Any]] = []
        self.losses: list[np.ndarray] = []  # per-step losses since the last fine point
        self.steps_done = 0
        epochs = lay.num_chunks // lay.chunks_per_epoch
        self.examples = np.zeros(epochs, np.int64)  # masks are shared: every live replica counts the same
        self.updates = np.zeros((epochs, replicas), np.int64)  # update counter at each epoch's end
        self.diverged = np.zeros(replicas, bool)  # as of the last chunk (exploded, not yet set back)
        self.uphill = np.zeros(replicas)
        self.moves = np.zeros(replicas)
        self.last = np.full(replicas, np.nan)  # the previous step's log loss

    def chunk(self, c: int, out: dict[str, Any], active: np.ndarray) -> None:
        self.steps_done += int(active.sum())
        epoch = c // self.lay.chunks_per_epoch
        self.examples[epoch] += int(round(float(np.max(out["examples"]))))  # a diverged replica skips (0)
        self.updates[epoch] = out["updates"]
        self.diverged = np.asarray(out["diverged"], bool)
        losses = np.asarray(out["loss"], float)[:, active]
        self._oscillation(losses)
        self.losses.append(losses)

    def fine(self, step: int, metrics: dict[str, Any]) -> None:
        losses = np.concatenate(self.losses, axis=1) if self.losses else np.full((len(self.last), 1), np.nan)
        self.losses.clear()
        with np.errstate(over="ignore", invalid="ignore"):  # a frozen replica's losses are NaN
            minibatch = losses.mean(axis=1)
        self.fine_points.append({"step": step, "metrics": jax.device_get(metrics), "minibatch": minibatch})

    def coarse(self, step: int, metrics: dict[str, Any]) -> None:
        self.coarse_points.append({"step": step, "metrics": jax.device_get(metrics)})

    def _oscillation(self, losses: np.ndarray) -> None:
        """Accumulates, per replica, how much of the per-step log loss's movement goes uphill
        (every step, so equally spaced at every batch size); NaN steps (frozen) add nothing."""
        with np.errstate(divide="ignore", invalid="ignore"):
            logs = np.concatenate([self.last[:, None], np.log(losses)], axis=1)
            moves = np.diff(logs, axis=1)
        moves = np.where(np.isfinite(moves), moves, 0.0)
        self.uphill += np.clip(moves, 0, None).sum(1)
        self.moves += np.abs(moves).sum(1)
        self.last = logs[:, -1]

    def oscillation(self) -> list[float | None]:
        return [float(u / m) if m > 0 else None for u, m in zip(self.uphill, self.moves, strict=True)]

    def counted(self, guard: Any) -> dict[str, Any]:
        """What the compiled program counted per epoch: real examples used, and updates
        (the step counter's increase) of every replica that never diverged, as the distinct
        values they took (one value when they all agree)."""
        stable = ~np.asarray(guard.diverged)
        ends = self.updates[:, stable]
        per_epoch = np.diff(np.concatenate([np.zeros((1, ends.shape[1]), np.int64), ends]), axis=0)
        return {"examples_per_epoch": self.examples.tolist(),
                "updates_per_epoch": [sorted(set(row.tolist())) for row in per_epoch]}  # fmt: skip


def _round(v: float) -> float | None:
    """Six significant digits (float32 carries about seven, and the document stays small);
    None for a value not measured (a skipped evaluation) or not finite, as JSON stores it."""
    v = float(v)
    return float(f"{v:.6g}") if math.isfinite(v) else None


def _series(points: list[dict[str, Any]], split: str, r: int, spe: int) -> dict[str, list]:
    steps = [p["step"] for p in points]
    out = {"step": steps, "epoch": [s / spe for s in steps]}
    for metric in points[0]["metrics"]:
        out[f"{split}_{metric}"] = [_round(p["metrics"][metric][r]) for p in points]
    return out


def _result(grid, values, record: Recorder, guard, batch_size: int, lay: Layout) -> dict[str, Any]:
    spe = lay.steps_per_epoch
    oscillation = record.oscillation()
    replicas = []
    for r, ((hyper, seed), injected) in enumerate(zip(grid, values, strict=True)):
        lr = hyper["learning_rate"]
        curve = _series(record.fine_points, record.fine_split, r, spe)
        curve["minibatch_loss"] = [_round(p["minibatch"][r]) for p in record.fine_points]
        diverged = bool(guard.diverged[r])
        replicas.append({
            "learning_rate": lr, "hyperparameters": injected, "swept": sorted(hyper), "seed": seed, "curve": curve,
            "coarse": _series(record.coarse_points, record.coarse_split, r, spe), "diverged": diverged,
            "diverged_at_step": int(guard.step[r]) if diverged else None, "oscillation": oscillation[r],
        })  # fmt: skip
    return {
        "batch_size": batch_size,
        "steps_per_epoch": spe,
        "budget_steps": lay.total_steps,
        "chunk_steps": lay.chunk_steps,
        "evaluations": {"fine": len(record.fine_points), "coarse": len(record.coarse_points)},
        "replicas": replicas,
    }
