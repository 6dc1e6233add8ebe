"""One batch size of a sweep: every (learning rate x seed) replica trained together by one
vmapped, compiled program, measured cheaply enough that the sweep's time goes to training.

Batch sizes are compared at their own best learning rate (Shallue et al. 2018), so each
batch size gets the whole learning-rate grid. What is measured, and how often:

* the target's split (the test split for a test-accuracy target) at every fine point of the
  cadence (``cadence.layout``: about 1% of the budget, single steps early on for large
  batches), so steps to target are resolved exactly, and its loss comes free;
* the other split at ``coarse_evals`` points, on a fixed subsample of at most
  ``eval_examples`` (recorded);
* the training loss on a fixed sample of ``sample_examples`` rows at every fine point, for
  every live replica (oscillation of the objective on a fixed set, ``selection.oscillation``);
* every step's loss (the program returns them anyway): mini-batch means, instability;
* the gradient noise scale, only for the replicas the report uses (the best setting):
  every replica's state is kept at the probe checkpoints, the probes run at the end.

``BatchSize`` holds what every round of a batch size shares (the layout, the data on the
device, the optimizer, the compiled programs, the clock, the rounds trained so far);
``Round`` trains one set of entries in the replica slots, step by step of the cadence.
``run_batch_size`` trains the grid (or the points a grown grid adds), widens it where the
best sits on its edge, replays pruned runs until the best stays the best (``grid``) and
probes the best's noise scale; it returns plain data, which ``driver`` writes to disk.
"""

from __future__ import annotations

import copy
import dataclasses
import functools
import math
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jbatch.analysis.selection import HIGHER_IS_BETTER, setting
from jbatch.core.batching import steps_per_epoch
from jbatch.core.engine import Program, compile_program, replica_group
from jbatch.core.epoch import make_evaluate, make_needed, make_train_chunk
from jbatch.core.guard import init_guard, settle
from jbatch.core.replica import init_replicas, stack, stack_host
from jbatch.core.step import make_eval_step, make_train_step
from jbatch.sweeps.cadence import (
    Layout,
    budget_steps,
    chunk_batches,
    epoch_tables,
    fixed_subsample,
    layout,
    probe_chunks,
    with_coarse,
)
from jbatch.sweeps.clock import Clock, attempt
from jbatch.sweeps.config import SweepConfig
from jbatch.sweeps.grid import extension, merge_replay, replica_grid, settle_best, settled_bound
from jbatch.sweeps.noise import probe_replicas
from jbatch.sweeps.optimizer import replica_values, sweep_optimizer
from jbatch.sweeps.recorder import Recorder, Watch, result_document
from jbatch.workloads.data import to_device
from jbatch.workloads.workload import Workload

Entry = tuple[dict[str, float], int]  # a replica to train: its swept values and its seed
Resume = tuple[int, int, list[Any]]  # (chunk, step, each replica's (state, guard) on the host)
KEEP_BYTES = 1 << 30  # host memory for the states of pruned replicas, kept for a replay (beyond it: from the start)


class Programs(NamedTuple):
    """A batch size's compiled programs, built on its first round: a training chunk of every
    replica slot, the fine and coarse evaluations, the fixed sample's loss (None: off), the
    segment end's settle and a copy of the carry."""

    train: Program
    fine: Program
    coarse: Program
    sample: Program | None
    settle: Program
    copy: Program


@dataclasses.dataclass
class BatchSize:
    """What every round of one batch size shares. ``size`` replica slots run in every round
    (so every round reuses the same programs); ``rounds`` keeps, for each round trained, its
    noise checkpoints and the states of the replicas it pruned; ``origin`` maps each replica
    of the result to ``(round, slot)`` (None: an earlier run's replica)."""

    config: SweepConfig
    wl: Workload
    batch_size: int
    lay: Layout
    group: int | None
    train: Any
    data: dict[str, Any]
    fine_split: str
    coarse_split: str
    coarse_data: Any
    sample_data: Any
    tx: Any
    start_values: dict[str, float]
    probes: tuple[bool, ...]
    cache: dict
    clock: Clock
    prune: bool
    on_chunk: Callable[[int, int], None] | None
    size: int
    programs: Programs | None = None
    rounds: list[dict[str, Any]] = dataclasses.field(default_factory=list)
    origin: list[tuple[int, int] | None] = dataclasses.field(default_factory=list)

    @classmethod
    def of(cls, config: SweepConfig, wl: Workload, batch_size: int, placed: tuple[Any, Any] | None,
           replica_batch: int | None | str, cache: dict, prune: bool,
           on_chunk: Callable[[int, int], None] | None) -> BatchSize:  # fmt: skip
        clock = Clock()
        ds = wl.data
        n = ds.num_train
        spe = steps_per_epoch(n, batch_size, config.remainder)
        lay = with_coarse(layout(spe, budget_steps(config, spe), config.evals, batch_size), config.coarse_evals)
        train, test = placed or (to_device(ds.x_train, ds.y_train), to_device(ds.x_test, ds.y_test))
        fine_split = config.target_metric.split("_")[0]  # "test" or "train"
        coarse_split = "train" if fine_split == "test" else "test"
        data = {"train": train, "test": test}
        rows = fixed_subsample(int(data[coarse_split][0].shape[0]), config.eval_examples)
        sample = fixed_subsample(n, config.sample_examples, seed=3)  # the training loss on a fixed set
        tx, start_values, _ = sweep_optimizer(config, wl, cache)
        return cls(config=config, wl=wl, batch_size=batch_size, lay=lay,
                   group=replica_group(batch_size) if replica_batch == "auto" else replica_batch, train=train,
                   data=data, fine_split=fine_split, coarse_split=coarse_split,
                   coarse_data=data[coarse_split] if rows is None else tuple(a[rows] for a in data[coarse_split]),
                   sample_data=None if not config.sample_examples else train if sample is None else tuple(
                       a[sample] for a in train),
                   tx=tx, start_values=start_values, probes=probe_chunks(lay, config.noise_checkpoints), cache=cache,
                   clock=clock, prune=prune, on_chunk=on_chunk, size=len(replica_grid(config)))  # fmt: skip

    @property
    def whole(self) -> bool:
        """Full-batch descent: the split as it is, no order, no indices."""
        return self.batch_size == self.wl.data.num_train and self.config.remainder == "keep"

    def program(self, key: tuple, fn: Callable[..., Any], *args: Any, in_axes: tuple, donate=()) -> Program:
        """A program that does not depend on the batch size, compiled once per sweep (``cache``)."""
        if key not in self.cache:
            with self.clock.compiling():
                self.cache[key] = compile_program(fn, *args, in_axes=in_axes, donate_argnums=donate,
                                                  replica_batch=self.group)  # fmt: skip
        return self.cache[key]

    def build(self, carry: Any, batches: tuple[Any, ...]) -> Programs:
        """Compiles the batch size's programs for ``carry`` (every slot) and a chunk's ``batches``."""
        states, size = carry[0], self.size
        evaluate = make_needed(make_evaluate(make_eval_step(self.wl.loss, self.wl.classification)))
        with self.clock.compiling():
            chunk = make_train_chunk(make_train_step(self.wl.loss, self.config.microbatch or None), whole=self.whole)
            train = compile_program(chunk, carry, self.train, *batches, in_axes=(0, None, 0, None, None),
                                    donate_argnums=(0,), replica_batch=self.group)  # fmt: skip
        on = np.ones(size, bool)
        sample = None
        if self.sample_data is not None:
            sample = self.program(("eval-sample", len(self.sample_data[0]), self.group), evaluate, states,
                                  self.sample_data, on, in_axes=(0, None, 0))  # fmt: skip
        return Programs(
            train=train,
            fine=self.program(("eval", self.fine_split, self.group), evaluate, states, self.data[self.fine_split], on,
                              in_axes=(0, None, 0)),
            coarse=self.program(("eval-coarse", self.coarse_split, self.group), evaluate, states, self.coarse_data,
                                on, in_axes=(0, None, 0)),
            sample=sample,
            settle=self.program(("settle", self.group), settle, states, states, states, carry[1], carry[1],
                                in_axes=(0, 0, 0, 0, 0), donate=(1, 2)),
            copy=self.program(("copy", self.group), lambda c: jax.tree.map(lambda v: v.copy(), c), carry,
                              in_axes=(0,)),
        )  # fmt: skip

    def trained(self, entries: list[Entry], extension_round: int, bound: float) -> dict[str, Any]:
        """A round of ``entries`` (marked with their ``extension`` round), its checkpoints and
        kept states filed under ``rounds``, its replicas' places under ``origin``."""
        out = Round(self, entries, prune=self.prune, bound=bound).run()
        self.rounds.append({"checkpoints": out.pop("checkpoints"), "kept": out.pop("pruned_states")})
        self.origin.extend((len(self.rounds) - 1, slot) for slot in range(len(out["replicas"])))
        for r in out["replicas"]:
            r["extension"] = extension_round
        return out


class Round:
    """One round of a batch size: ``entries`` (swept values, seed) trained in the replica
    slots, unused slots parked (marked diverged from the start, so on CPU they skip their
    steps), evaluated at the cadence's fine and coarse points.

    ``prune``: stop the fine evaluations of replicas that can no longer be the best
    (``Watch``, from ``bound``: the best mean steps to target of earlier rounds). ``replay``:
    fine evaluations only, every one, stopping once every entry reached the target; its
    training is part of measuring, so its time counts as evaluation. ``resume``: (chunk,
    step, each entry's (state, guard)) to go on from, as kept when the entries were pruned.
    """

    def __init__(self, bs: BatchSize, entries: list[Entry], *, prune: bool, replay: bool = False,
                 bound: float = math.inf, resume: Resume | None = None):  # fmt: skip
        config, size = bs.config, bs.size
        self.bs, self.entries, self.prune, self.replay, self.resume = bs, entries, prune, replay, resume
        parked = size - len(entries)
        self.slots = entries + [entries[0]] * parked
        seeds = [seed for _, seed in self.slots]
        self.values = [replica_values(config, bs.wl, h, bs.batch_size, bs.lay.total_steps, bs.start_values)
                       for h, _ in self.slots]  # fmt: skip
        if resume is None:
            states = init_replicas(bs.wl.model, bs.tx, seeds, self.values, initial=bs.cache.setdefault("initial", {}))
            guards = [init_guard()] * len(entries)
        else:  # host copies, stacked on the host: one transfer, no eager device operations
            states = jax.device_put(stack_host([st for st, _ in resume[2]] + [resume[2][0][0]] * parked))
            guards = [g for _, g in resume[2]]
        guards = guards + [init_guard()._replace(diverged=jnp.ones((), bool))] * parked
        self.carry = (states, stack(guards))
        self.replica_bytes = sum(v.nbytes for v in jax.tree.leaves(self.carry)) // size
        self.twin = np.asarray([seeds.index(s) for s in seeds])  # a slot's first with its seed: same weights at step 0
        self.tables = functools.lru_cache(maxsize=1)(  # every chunk of an epoch cuts from the same tables
            lambda epoch: epoch_tables(seeds, epoch, bs.wl.data.num_train, bs.batch_size, config.remainder))
        if bs.programs is None:
            bs.programs = bs.build(self.carry, self.batches(0))
        self.record = Recorder(size, bs.lay, bs.fine_split, bs.coarse_split)
        self.real = np.arange(size) < len(entries)
        self.watch = Watch([(h if i < len(entries) else {"parked": i}, s) for i, (h, s) in enumerate(self.slots)],
                           config.target_metric.split("_", 1)[1], config.target_value,
                           HIGHER_IS_BETTER[config.target_metric], prune=prune, bound=bound)  # fmt: skip
        self.checkpoints: list[tuple[int, Any]] = []  # (step, every replica's state on the host)
        self.pruned: dict[int, tuple[int, int, Any]] = {}  # replica -> (chunk, step, its state on the host)

    def batches(self, c: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Chunk ``c``'s batches of every slot (full batch: placeholders, the split is used whole)."""
        lay = self.bs.lay
        if self.bs.whole:
            k = lay.chunk_steps
            return np.zeros((self.bs.size, k, 1), np.int32), np.ones((k, 1), bool), np.arange(k) < lay.chunks[c][2]
        return chunk_batches(lay, c, self.bs.batch_size, self.tables)

    def evaluate(self, program: Program, split: Any, need: np.ndarray) -> dict[str, np.ndarray]:
        """``program`` on ``split`` for the replicas in ``need``; at step 0 once per seed (the
        learning rates' replicas of a seed hold the same weights), copied to the others."""
        clock, states = self.bs.clock, self.carry[0]
        if self.record.steps_done or self.resume is not None:
            return jax.device_get(clock.call("evaluate", program, states, split, need))
        once = need & (self.twin == np.arange(self.bs.size))
        out = jax.device_get(clock.call("evaluate", program, states, split, once))
        return jax.tree.map(lambda v: np.where(need, v[self.twin], np.nan).astype(v.dtype), out)

    def live(self) -> np.ndarray:
        """The entries still training: a frozen replica's curve ends (its later points would
        repeat one state); the reference (no pruning) evaluates them too."""
        return self.real & ~self.record.diverged if self.prune else self.real

    def fine(self, everyone: bool, c: int) -> None:
        """A fine point: the target's split for the replicas that need it (``everyone`` at
        coarse points and in a replay), the fixed sample's loss, the watch updated, and the
        states of the replicas it prunes now kept for a replay."""
        bs, record, watch = self.bs, self.record, self.watch
        need = self.live() if everyone else watch.need(record.diverged) & self.real
        if need.any() or not record.fine_points:
            metrics = self.evaluate(bs.programs.fine, bs.data[bs.fine_split], need)
        else:  # no replica needs it: no call at all (the program would only skip each one)
            metrics = jax.tree.map(lambda v: np.full_like(v, np.nan), record.fine_points[-1]["metrics"])
        on_sample = None  # a replay knows these already: the run it replays evaluated them
        if bs.programs.sample is not None and not self.replay:
            on_sample = self.evaluate(bs.programs.sample, bs.sample_data, self.live())["loss"]
        record.fine(record.steps_done, metrics, on_sample)
        before = [p is None for p in watch.pruned_at]
        watch.update(record.steps_done, metrics, need, record.diverged)
        self.keep([r for r, p in enumerate(watch.pruned_at) if p is not None and before[r] and self.real[r]], c)

    def keep(self, newly: list[int], c: int) -> None:
        """Keeps the states of the replicas pruned at chunk ``c`` on the host (within
        ``KEEP_BYTES``): a replay of one of them goes on from here, not from the start."""
        if not newly or self.replica_bytes * (len(self.pruned) + len(newly)) > KEEP_BYTES:
            return
        kept = self.bs.clock.call("other", jax.device_get, jax.tree.map(lambda v: v[np.asarray(newly)], self.carry))
        for i, r in enumerate(newly):
            self.pruned[r] = (c, self.record.steps_done, jax.tree.map(lambda v, i=i: v[i], kept))

    def run(self) -> dict[str, Any]:
        """Trains chunk by chunk: each chunk's steps, then at a segment's end the settle of
        exploded replicas back to a finite state, the fine and coarse evaluations where the
        cadence has them, and the noise checkpoints. Returns the round's result document."""
        bs, record, programs, clock, lay = self.bs, self.record, self.bs.programs, self.bs.clock, self.bs.lay
        first = -1 if self.resume is None else self.resume[0]
        if self.resume is not None:
            record.steps_done = self.resume[1]
        self.fine(everyone=True, c=first)
        if not self.replay:
            record.coarse(0, self.evaluate(programs.coarse, bs.coarse_data, self.real))
        part = "evaluate" if self.replay else "train"
        start = clock.call("other", programs.copy, self.carry)  # the segment's first state
        prev = clock.call("other", programs.copy, self.carry)  # and the previous segment's
        for c in range(first + 1, lay.num_chunks):
            idx, mask, active = self.batches(c)
            self.carry, out = clock.call(part, programs.train, self.carry, bs.train, idx, mask, active)
            record.chunk(c, jax.device_get(out), active)
            if lay.coarse[c]:  # end of a segment: exploded replicas go back to a finite state
                state, prev_state, start = clock.call("other", programs.settle, start[0], prev[0], self.carry[0],
                                                      start[1], self.carry[1])  # fmt: skip
                self.carry, prev = (state, self.carry[1]), (prev_state, self.carry[1])
            if lay.evaluate[c]:
                self.fine(everyone=lay.coarse[c] or self.replay, c=c)
                if bs.on_chunk is not None:
                    bs.on_chunk(c + 1, lay.num_chunks)
                if self.replay and np.all(self.watch.reached_at[self.real] >= 0):
                    break
            if lay.coarse[c] and not self.replay:
                record.coarse(record.steps_done, clock.call("evaluate", programs.coarse, self.carry[0], bs.coarse_data,
                                                            self.live()))  # fmt: skip
            if bs.probes[c] and not self.replay:
                self.checkpoints.append((record.steps_done, clock.call("noise", jax.device_get, self.carry[0])))
        return self.document()

    def document(self) -> dict[str, Any]:
        """The round's result: its entries' replicas (curves, divergence, pruning), what the
        program counted, the noise checkpoints, the best mean steps (``bound``) and the
        states kept for a replay."""
        n = len(self.entries)
        guard = jax.device_get(self.carry[1])
        out = result_document(self.slots, self.values, self.record, guard, self.bs.batch_size, self.bs.lay)
        out["replicas"] = out["replicas"][:n]
        for rep, at in zip(out["replicas"], self.watch.pruned_at, strict=False):
            rep["pruned_at_step"] = at
        out["counted"] = self.record.counted(guard)
        out["checkpoints"] = [(step, jax.tree.map(lambda v: v[:n], st)) for step, st in self.checkpoints]
        out["bound"] = self.watch.best
        out["pruned_states"] = self.pruned
        return out


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
    curves: per replica, the fine points (the target's split, mini-batch loss means, the
    fixed sample's loss) and the coarse ones (the other split), divergence (exact step) and,
    at the best setting, the noise scale along training; per batch size, the examples and
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
    bs = BatchSize.of(config, wl, batch_size, placed, replica_batch, {} if cache is None else cache, prune, on_chunk)
    result, bound = train_grid(bs, previous)
    extend_grid(bs, result, bound)
    ds = wl.data
    result["replica_batch"] = bs.group
    result["tokens_per_example"] = int(np.prod(ds.y_train.shape[1:])) if wl.classification else 1
    result["memory"] = bs.programs.train.memory  # XLA's plan for the training program of every replica
    result["evaluation"] = {"fine": bs.fine_split, "coarse": bs.coarse_split,
                            "coarse_examples": int(bs.coarse_data[0].shape[0]),
                            "coarse_of": int(bs.data[bs.coarse_split][0].shape[0]),
                            "sample_examples": 0 if bs.sample_data is None else len(bs.sample_data[0])}  # fmt: skip
    _, chosen = settle_best(result, config, functools.partial(replay, bs, result))
    probe_best(bs, result, chosen)
    result["time"] = bs.clock.summary()
    if previous is not None and previous.get("time"):  # the earlier run's time, and this one's
        result["time"] = {k: previous["time"].get(k, 0.0) + v for k, v in result["time"].items()}
    return result


def train_grid(bs: BatchSize, previous: dict[str, Any] | None) -> tuple[dict[str, Any], float]:
    """The grid's round, or, when ``previous`` holds an earlier run of a smaller grid, its
    replicas and a round of the points the grid gained; with the best mean steps so far."""
    grid = replica_grid(bs.config)
    if previous is None:
        result = bs.trained(grid, 0, math.inf)
        return result, result.pop("bound")
    result = copy.deepcopy(previous)
    for key in ("time", "timing", "failures"):
        result.pop(key, None)
    bs.origin = [None] * len(result["replicas"])
    have = {(setting(rep), rep["seed"]) for rep in result["replicas"]}
    new = [(h, seed) for h, seed in grid if (tuple(sorted(h.items())), seed) not in have]
    new_seeds = set(bs.config.seeds) - {rep["seed"] for rep in previous["replicas"]}
    bound = math.inf if new_seeds else settled_bound(bs.config, previous)  # a mean over other seeds is no bound
    extra = bs.trained(new, 0, bound)
    result["replicas"] += extra["replicas"]
    return result, min(bound, extra["bound"])


def extend_grid(bs: BatchSize, result: dict[str, Any], bound: float) -> None:
    """While the best learning rate sits on the grid's edge, rounds of the next half-decades
    beyond it (``grid.extension``), up to ``extend_grid`` added settings in all, in the same
    programs; each round starts from the earlier rounds' best (``bound``)."""
    config = bs.config
    added = len({setting(r) for r in result["replicas"] if r["extension"]})
    round_ = max(r["extension"] for r in result["replicas"])
    while added < config.extend_grid:
        more = extension(config, result, min(bs.size // len(config.seeds), config.extend_grid - added))
        if not more:
            break
        round_, added = round_ + 1, added + len(more)
        extra = bs.trained([(values, seed) for values in more for seed in config.seeds], round_, bound)
        bound = min(bound, extra.pop("bound"))
        result["replicas"] += extra["replicas"]


def replay(bs: BatchSize, result: dict[str, Any], todo: list[int]) -> None:
    """Trains the pruned replicas ``todo`` of ``result`` again from where they were pruned
    (from the start where the state was not kept: ``KEEP_BYTES``, or an earlier run's), the
    same trajectory with every fine point evaluated, and fills their curves in; one replay
    per pruning point. A failure is recorded (``clock.attempt``)."""
    groups: dict[tuple[int, int] | None, list[tuple[int, Any]]] = {}
    for r in todo:
        at = bs.origin[r]
        c, step, state = bs.rounds[at[0]]["kept"].get(at[1], (None, None, None)) if at else (None, None, None)
        groups.setdefault(None if state is None else (c, step), []).append((r, state))
    for at, these in groups.items():
        entries = [(dict(setting(result["replicas"][r])), result["replicas"][r]["seed"]) for r, _ in these]
        resume = None if at is None else (*at, [st for _, st in these])
        rerun = functools.partial(Round, bs, entries, prune=False, replay=True, resume=resume)
        again = attempt(result, "replay", lambda rerun=rerun: rerun().run())
        for (r, _), rep in zip(these, again["replicas"] if again else [], strict=False):
            merge_replay(result["replicas"][r], rep)


def probe_best(bs: BatchSize, result: dict[str, Any], chosen: list[int]) -> None:
    """The gradient noise scale at the checkpoints of the best setting's replicas (those
    trained here, whose states were kept), filled into their replicas; a failure is
    recorded (``clock.attempt``)."""
    probed: dict[int, list[tuple[int, int]]] = {}  # round -> (replica, slot)
    for r in chosen:
        if bs.origin[r] is not None and bs.rounds[bs.origin[r][0]]["checkpoints"]:
            probed.setdefault(bs.origin[r][0], []).append((r, bs.origin[r][1]))
    for at, these in probed.items():
        noise = attempt(result, "noise", probe_replicas, bs.rounds[at]["checkpoints"], [slot for _, slot in these],
                        bs.train, bs.wl.loss, bs.config, bs.cache, bs.clock)  # fmt: skip
        for (r, _), rep in zip(these, noise["replicas"] if noise else [], strict=False):
            result["replicas"][r]["noise"] = rep
        if noise:
            result["noise_estimate"] = {"examples": noise["examples"], "group": noise["group"],
                                        "of": bs.wl.data.num_train}  # fmt: skip
