"""One batch size of a sweep: every (learning rate x seed) replica trained together by one
vmapped, compiled program, measured cheaply enough that the sweep's time goes to training.

Batch sizes are compared at their own best learning rate (Shallue et al. 2018), so each
batch size gets the whole learning-rate grid. What is measured, and how often:

* the target's split (the test split for a test-accuracy target) at every fine point of the
  cadence (``schedule.layout``: about 1% of the budget, single steps early on for large
  batches), so steps to target are resolved exactly as before, and its loss comes free;
* the other split at ``coarse_evals`` points, on a fixed subsample of at most
  ``eval_examples`` (recorded);
* the training loss on a fixed sample of ``sample_examples`` rows at every fine point, for
  every live replica (oscillation of the objective on a fixed set, ``summary.oscillation``);
* every step's loss (the program returns them anyway): mini-batch means, instability;
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
import copy
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
from jbatch.errors import one_line
from jbatch.guard import init_guard, settle
from jbatch.noise import gradient_moments
from jbatch.recorder import Recorder, Watch, result_document, rounded
from jbatch.replica import init_replicas, stack, stack_host
from jbatch.schedule import budget_steps, chunk_batches, epoch_tables, layout, probe_chunks, with_coarse
from jbatch.step import init_train_state, make_eval_step, make_train_step
from jbatch.summary import HIGHER_IS_BETTER, best_setting, rank, replica_summary, setting
from jbatch.workload import Workload, replica_values, sweep_optimizer

Resume = tuple[int, int, list[Any]]  # (chunk, step, each replica's (state, guard) on the host)
KEEP_BYTES = 1 << 30  # host memory for the states of pruned replicas, kept for a replay (beyond it: from the start)
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


def attempt(result: dict[str, Any], what: str, fn: Callable[..., Any], *args: Any) -> Any:
    """``fn(*args)``, or None when it raises: the failure is recorded in
    ``result["failures"][what]`` as one line, so a batch size already trained is not lost
    to what comes after its training (noise probes, replays, timing)."""
    try:
        return fn(*args)
    except Exception as e:  # noqa: BLE001  recorded, and reported by the sweep, instead of losing the training
        result.setdefault("failures", {})[what] = one_line(e)
        return None


def replica_grid(config: SweepConfig) -> list[tuple[dict[str, float], int]]:
    """Every replica of a batch size: each combination of the swept hyperparameters
    (``SweepConfig.axes``: learning rate first), with each seed."""
    axes = config.axes()
    combos = itertools.product(*axes.values())
    return [(dict(zip(axes, values, strict=True)), seed) for values in combos for seed in config.seeds]


def settle_best(result: dict[str, Any], config: SweepConfig, replay: Callable[[list[int]], None]) -> tuple:
    """The best setting and its replicas' indices, once no pruned run can change the choice.

    A pruned replica's steps to target come from a coarse point, later than the truth; the
    truth lies after the step it was pruned at. Every setting whose pruned replicas, put at
    one step past their pruning, would rank at least as well as the best (``summary.rank``)
    has those replicas replayed (``replay(indices)`` fills in their fine points), and the
    ranking is made again, until none is left (each replica is replayed at most once)."""
    replayed: set[int] = set()
    while True:
        summaries = [replica_summary(r, result, config.target_metric, config.target_value) for r in result["replicas"]]
        best = best_setting(summaries)
        by: dict[tuple, list[int]] = {}
        for r, s in enumerate(summaries):
            by.setdefault(s["setting"], []).append(r)
        best_rank = rank([summaries[r] for r in by[best]])
        todo = [r for key, members in by.items() for r in members
                if summaries[r]["coarse_steps"] and r not in replayed
                and rank([summaries[i] for i in members], optimistic=True) <= best_rank]  # fmt: skip
        if not todo:
            return best, by[best]
        replayed.update(todo)
        replay(todo)


def settled_bound(config: SweepConfig, result: dict[str, Any]) -> float:
    """The fewest mean steps to target of a setting of ``result`` whose every seed reached
    the target (``recorder.Watch.best`` of a finished run; a target reached at a coarse
    point counts at that later step, so the bound is never tighter than the truth)."""
    summaries = [replica_summary(r, result, config.target_metric, config.target_value) for r in result["replicas"]]
    by: dict[tuple, list[dict[str, Any]]] = {}
    for s in summaries:
        by.setdefault(s["setting"], []).append(s)
    done = [float(np.mean([s["steps_to_target"] for s in group])) for group in by.values()
            if all(s["reached"] for s in group)]  # fmt: skip
    return min(done, default=math.inf)


def missing(config: SweepConfig, result: dict[str, Any]) -> int:
    """How many replicas of ``config``'s grid a batch size's ``result`` lacks (a grown grid)."""
    have = {(setting(rep), rep["seed"]) for rep in result["replicas"]}
    return sum((tuple(sorted(h.items())), seed) not in have for h, seed in replica_grid(config))


def init_single(config: SweepConfig, wl: Workload, cache: dict | None = None) -> Callable[[], Any]:
    """A fresh single-model training state (seed 0, the grid's first values), for timing
    and demonstrations."""
    cache = {} if cache is None else cache
    tx = sweep_optimizer(config, wl, cache).tx
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
    previous: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Trains every (learning rate x seed) replica at ``batch_size`` and returns the raw
    curves: per replica, the fine points (the target's split, mini-batch loss means) and
    the coarse ones (the other split), divergence (exact step), the fixed sample's loss and, at the
    best learning rate, the noise scale along training; per batch size, the examples and
    updates per epoch as the program counted them, and where the time went.

    ``placed``: the (train, test) data already on the device (``to_device``), shared by a
    sweep's batch sizes. ``replica_batch``: how many replicas run vmapped together ("auto":
    ``engine.replica_group``; None: all, as accelerators do). ``cache``: compiled programs
    that do not depend on the batch size, shared by a sweep's batch sizes. ``prune``: stop
    the fine evaluations of replicas that can no longer be the best (``Watch``); False
    evaluates every replica at every fine point (the reference the tests compare with).
    ``previous``: this batch size's result from an earlier run of a smaller grid (the config
    only added learning rates, other swept values or seeds): its replicas are kept and only
    the new grid points train.
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
    sample = fixed_subsample(n, config.sample_examples, seed=3)  # the training loss on a fixed set, at every fine point
    sample_data = None if not config.sample_examples else train if sample is None else tuple(a[sample] for a in train)

    tx, start_values, _ = sweep_optimizer(config, wl, cache)
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

    def train_round(entries: list[tuple[dict[str, float], int]], prune: bool = prune, replay: bool = False,
                    bound: float = math.inf, resume: Resume | None = None) -> dict[str, Any]:  # fmt: skip
        """Trains ``entries`` (swept values, seed) in the ``size`` replica slots; unused slots are
        parked: marked diverged from the start, so on CPU they skip their steps. ``replay``:
        fine evaluations only, every one, stopping once every entry reached the target; its
        training is part of measuring, so its time counts as evaluation. ``bound``: the best
        mean steps to target of the earlier rounds (``Watch``). ``resume``: (chunk, step, each
        entry's (state, guard)) to go on from, as kept when the entries were pruned."""
        parked = size - len(entries)
        slots = entries + [entries[0]] * parked
        seeds = [g[1] for g in slots]
        values = [replica_values(config, wl, h, batch_size, lay.total_steps, start_values) for h, _ in slots]
        if resume is None:
            states = init_replicas(wl.model, tx, seeds, values, initial=cache.setdefault("initial", {}))
            guards = [init_guard()] * len(entries)
        else:  # host copies, stacked on the host: one transfer, no eager device operations
            states = jax.device_put(stack_host([st for st, _ in resume[2]] + [resume[2][0][0]] * parked))
            guards = [g for _, g in resume[2]]
        guards = guards + [init_guard()._replace(diverged=jnp.ones((), bool))] * parked
        carry = (states, stack(guards))
        replica_bytes = sum(v.nbytes for v in jax.tree.leaves(carry)) // size
        twin = np.asarray([seeds.index(s) for s in seeds])  # a slot's first with its seed: the same weights at step 0
        tables = functools.lru_cache(maxsize=1)(  # every chunk of an epoch cuts from the same tables
            lambda epoch: epoch_tables(seeds, epoch, n, batch_size, config.remainder)
        )

        def batches(c: int):
            if whole:  # full batch ignores order and indices: send placeholders
                k = lay.chunk_steps
                return np.zeros((size, k, 1), np.int32), np.ones((k, 1), bool), np.arange(k) < lay.chunks[c][2]
            return chunk_batches(lay, c, batch_size, tables)

        if not built:
            with clock.compiling():
                built["train"] = compile_program(
                    make_train_chunk(make_train_step(loss_fn, config.microbatch or None), whole=whole), carry, train,
                    *batches(0),
                    in_axes=(0, None, 0, None, None), donate_argnums=(0,), replica_batch=group)  # fmt: skip
            built["fine"] = program(("eval", fine_split, group), make_needed(evaluate), states, data[fine_split],
                                    np.ones(size, bool), in_axes=(0, None, 0))  # fmt: skip
            built["coarse"] = program(("eval-coarse", coarse_split, group), make_needed(evaluate), states,
                                      coarse_data, np.ones(size, bool), in_axes=(0, None, 0))  # fmt: skip
            if sample_data is not None:
                built["sample"] = program(("eval-sample", len(sample_data[0]), group), make_needed(evaluate), states,
                                          sample_data, np.ones(size, bool), in_axes=(0, None, 0))  # fmt: skip
            built["settle"] = program(("settle", group), settle, states, states, states, carry[1], carry[1],
                                      in_axes=(0, 0, 0, 0, 0), donate=(1, 2))  # fmt: skip
            built["copy"] = program(("copy", group), lambda c: jax.tree.map(lambda v: v.copy(), c), carry,
                                    in_axes=(0,))  # fmt: skip
        record = Recorder(size, lay, fine_split, coarse_split)
        checkpoints: list[tuple[int, Any]] = []  # (step, every replica's state on the host)
        real = np.arange(size) < len(entries)
        watch = Watch([(h if i < len(entries) else {"parked": i}, s) for i, (h, s) in enumerate(slots)],
                      config.target_metric.split("_", 1)[1], config.target_value,
                      HIGHER_IS_BETTER[config.target_metric], prune=prune, bound=bound)  # fmt: skip

        def evaluate_split(program, split, need):
            """``program`` on ``split`` for the replicas in ``need``; at step 0 once per seed (the
            learning rates' replicas of a seed hold the same weights), copied to the others."""
            if record.steps_done or resume is not None:
                return jax.device_get(clock.call("evaluate", program, carry[0], split, need))
            out = jax.device_get(clock.call("evaluate", program, carry[0], split, need & (twin == np.arange(size))))
            return jax.tree.map(lambda v: np.where(need, v[twin], np.nan).astype(v.dtype), out)

        def live() -> np.ndarray:  # a frozen replica's curve ends (its later points would repeat one state)
            return real & ~record.diverged if prune else real  # the reference (no pruning) evaluates them too

        def fine(everyone: bool, c: int) -> None:
            need = live() if everyone else watch.need(record.diverged) & real
            if need.any() or not record.fine_points:
                metrics = evaluate_split(built["fine"], data[fine_split], need)
            else:  # no replica needs it: no call at all (the program would only skip each one)
                metrics = jax.tree.map(lambda v: np.full_like(v, np.nan), record.fine_points[-1]["metrics"])
            on_sample = None  # a replay knows these already: the run it replays evaluated them
            if sample_data is not None and not replay:
                on_sample = evaluate_split(built["sample"], sample_data, live())["loss"]
            record.fine(record.steps_done, metrics, on_sample)
            before = [p is None for p in watch.pruned_at]
            watch.update(record.steps_done, metrics, need, record.diverged)
            newly = [r for r, p in enumerate(watch.pruned_at) if p is not None and before[r] and real[r]]
            if newly and replica_bytes * (len(pruned_states) + len(newly)) <= KEEP_BYTES:
                # kept on the host: a replay of one of them goes on from here, not from the start
                kept = clock.call("other", jax.device_get, jax.tree.map(lambda v: v[np.asarray(newly)], carry))
                for i, r in enumerate(newly):
                    pruned_states[r] = (c, record.steps_done, jax.tree.map(lambda v, i=i: v[i], kept))

        pruned_states: dict[int, tuple[int, int, Any]] = {}
        first = -1 if resume is None else resume[0]
        if resume is not None:
            record.steps_done = resume[1]
        fine(everyone=True, c=first)
        if not replay:
            record.coarse(0, evaluate_split(built["coarse"], coarse_data, real))
        part = "evaluate" if replay else "train"
        start = clock.call("other", built["copy"], carry)  # the segment's first state
        prev = clock.call("other", built["copy"], carry)  # and the previous segment's
        for c in range(first + 1, lay.num_chunks):
            idx, mask, active = batches(c)
            carry, out = clock.call(part, built["train"], carry, train, idx, mask, active)
            record.chunk(c, jax.device_get(out), active)
            if lay.coarse[c]:  # end of a segment: exploded replicas go back to a finite state
                state, prev_state, start = clock.call("other", built["settle"], start[0], prev[0], carry[0],
                                                      start[1], carry[1])  # fmt: skip
                carry, prev = (state, carry[1]), (prev_state, carry[1])
            if lay.evaluate[c]:
                fine(everyone=lay.coarse[c] or replay, c=c)
                if on_chunk is not None:
                    on_chunk(c + 1, lay.num_chunks)
                if replay and np.all(watch.reached_at[real] >= 0):
                    break
            if lay.coarse[c] and not replay:
                record.coarse(record.steps_done, clock.call("evaluate", built["coarse"], carry[0], coarse_data, live()))
            if probes[c] and not replay:
                checkpoints.append((record.steps_done, clock.call("noise", jax.device_get, carry[0])))
        guard = jax.device_get(carry[1])
        out = result_document(slots, values, record, guard, batch_size, lay)
        out["replicas"] = out["replicas"][: len(entries)]
        for rep, at in zip(out["replicas"], watch.pruned_at, strict=False):
            rep["pruned_at_step"] = at
        out["counted"] = record.counted(guard)
        out["checkpoints"] = [(step, jax.tree.map(lambda v: v[: len(entries)], st)) for step, st in checkpoints]
        out["bound"] = watch.best
        out["pruned_states"] = pruned_states
        return out

    rounds: list[dict[str, Any]] = []  # each round trained here: its probe checkpoints and kept pruned states
    origin: list[tuple[int, int] | None] = []  # per replica of `result`: (round, slot); None: an earlier run's

    def trained(entries: list[tuple[dict[str, float], int]], extension_round: int, bound: float) -> dict[str, Any]:
        out = train_round(entries, bound=bound)
        rounds.append({"checkpoints": out.pop("checkpoints"), "kept": out.pop("pruned_states")})
        origin.extend((len(rounds) - 1, slot) for slot in range(len(out["replicas"])))
        for r in out["replicas"]:
            r["extension"] = extension_round
        return out

    if previous is None:
        result = trained(grid, 0, math.inf)
        bound = result.pop("bound")
    else:  # the grid grew: train only its new points, next to the earlier run's replicas
        result = copy.deepcopy(previous)
        for key in ("time", "timing", "failures"):
            result.pop(key, None)
        origin = [None] * len(result["replicas"])
        have = {(setting(rep), rep["seed"]) for rep in result["replicas"]}
        new = [(h, seed) for h, seed in grid if (tuple(sorted(h.items())), seed) not in have]
        new_seeds = set(config.seeds) - {rep["seed"] for rep in previous["replicas"]}
        bound = math.inf if new_seeds else settled_bound(config, previous)  # a mean over other seeds is no bound
        extra = trained(new, 0, bound)
        bound = min(bound, extra["bound"])
        result["replicas"] += extra["replicas"]
    added = len({setting(r) for r in result["replicas"] if r["extension"]})
    round_ = max(r["extension"] for r in result["replicas"])
    while added < config.extend_grid:
        more = extension(config, result, min(len(grid) // len(config.seeds), config.extend_grid - added))
        if not more:
            break
        round_, added = round_ + 1, added + len(more)
        extra = trained([(setting_values, seed) for setting_values in more for seed in config.seeds], round_, bound)
        bound = min(bound, extra.pop("bound"))
        result["replicas"] += extra["replicas"]
    result["replica_batch"] = group
    result["tokens_per_example"] = int(np.prod(ds.y_train.shape[1:])) if wl.classification else 1
    result["memory"] = built["train"].memory  # XLA's plan for the training program of every replica
    result["evaluation"] = {"fine": fine_split, "coarse": coarse_split, "coarse_examples": int(coarse_data[0].shape[0]),
                            "coarse_of": int(data[coarse_split][0].shape[0]),
                            "sample_examples": 0 if sample_data is None else int(sample_data[0].shape[0])}  # fmt: skip
    # A pruned run's steps to target are known to the coarse resolution only. A setting that could still be the
    # best (its pruned seeds would need only one step more than where they were pruned: the first to finish
    # later blew up) trains again from where it was pruned (from the start where the state was not kept:
    # KEEP_BYTES, or an earlier run's), the same trajectory, every fine point evaluated, and is filled in; then
    # the settings are ranked again, until the best stays the best (``settle_best``).

    def replay(todo: list[int]) -> None:
        groups: dict[tuple[int, int] | None, list[tuple[int, Any]]] = {}
        for r in todo:
            at = origin[r]
            c, step, state = rounds[at[0]]["kept"].get(at[1], (None, None, None)) if at else (None, None, None)
            groups.setdefault(None if state is None else (c, step), []).append((r, state))
        for at, these in groups.items():
            again = attempt(result, "replay", functools.partial(
                train_round, prune=False, replay=True, resume=None if at is None else (*at, [st for _, st in these])),
                [(dict(setting(result["replicas"][r])), result["replicas"][r]["seed"]) for r, _ in these])  # fmt: skip
            for (r, _), rep in zip(these, again["replicas"] if again else [], strict=False):
                merge_replay(result["replicas"][r], rep)

    best, chosen = settle_best(result, config, replay)
    probed: dict[int, list[tuple[int, int]]] = {}  # round -> (replica, slot) of the best, where checkpoints were kept
    for r in chosen:
        if origin[r] is not None and rounds[origin[r][0]]["checkpoints"]:
            probed.setdefault(origin[r][0], []).append((r, origin[r][1]))
    for at, these in probed.items():
        noise = attempt(result, "noise", probe_replicas, rounds[at]["checkpoints"], [slot for _, slot in these], train,
                        loss_fn, config, cache, clock)  # fmt: skip
        for (r, _), rep in zip(these, noise["replicas"] if noise else [], strict=False):
            result["replicas"][r]["noise"] = rep
        if noise:
            result["noise_estimate"] = {"examples": noise["examples"], "group": noise["group"], "of": n}
    result["time"] = clock.summary()
    if previous is not None and previous.get("time"):  # the earlier run's time, and this one's
        result["time"] = {k: previous["time"].get(k, 0.0) + v for k, v in result["time"].items()}
    return result


def merge_replay(original: dict[str, Any], replay: dict[str, Any]) -> None:
    """Fills the fine points a pruned replica skipped with those of its replay (the same
    trajectory from where it was pruned, evaluated at every fine point up to the target), in
    place."""
    steps = replay["curve"]["step"]
    at = original["curve"]["step"].index(steps[0])  # a replay starts where its run was pruned
    assert original["curve"]["step"][at : at + len(steps)] == steps, "a replay follows the same cadence"
    for key, values in replay["curve"].items():
        if key in ("step", "epoch"):
            continue
        mine = original["curve"][key]
        for i, v in enumerate(values, start=at):
            if mine[i] is None:
                mine[i] = v
    original["pruned_at_step"] = None
    original["replayed_until"] = steps[-1]


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
    keys = ("b_simple", "grad_sq", "trace_sigma")
    replicas = [{"step": steps} | {k: [rounded(v[k][i]) for v in values] for k in keys} for i in range(len(chosen))]
    return {"replicas": replicas, "examples": int(data[0].shape[0]), "group": group}
