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

``BatchSize`` holds what every round of a batch size shares (the layout, the session, the
compiled programs, the clock, the rounds trained so far); ``Round`` trains one set of
entries in the replica slots, step by step of the cadence, and returns a ``RoundResult``: the
replicas' records, and apart from them the device states it kept (noise checkpoints, pruned
replicas). ``run_batch_size`` trains the grid (or the points a grown grid adds), widens it
where the best sits on its edge, replays pruned runs until the best stays the best (``grid``)
and probes the best's noise scale; it returns the batch size's record
(``results.BatchSizeResult``), which ``driver`` writes to disk.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import msgspec
import numpy as np

from jbatch.analysis.selection import setting
from jbatch.core.batching import steps_per_epoch
from jbatch.core.engine import Program, replica_group
from jbatch.core.guard import init_guard, settle
from jbatch.core.replica import init_replicas, stack, stack_host
from jbatch.results.records import BatchSizeResult, Counted, Evaluations, Replica, Splits, TimeSpent
from jbatch.sweeps.cadence import (
    Layout,
    chunk_batches,
    epoch_tables,
    fixed_subsample,
    layout,
    probe_chunks,
    with_coarse,
)
from jbatch.sweeps.clock import TIME_PARTS, Clock, attempt
from jbatch.sweeps.grid import extension, merge_replay, replica_grid, settle_best, settled_bound
from jbatch.sweeps.noise import probe_replicas
from jbatch.sweeps.optimizer import replica_values
from jbatch.sweeps.recorder import Recorder, Watch, replicas
from jbatch.sweeps.session import Session

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
class RoundResult:
    """What a round measured (its entries' ``replicas``, what the program ``counted``, its
    evaluation points) and, apart from it, what it kept on the host: the states at the noise
    ``checkpoints`` and those of the replicas it ``pruned`` (for a replay), and ``bound``, the
    fewest mean steps to target of a setting whose every seed reached it."""

    replicas: list[Replica]
    counted: Counted
    evaluations: Evaluations
    checkpoints: list[tuple[int, Any]]
    pruned: dict[int, tuple[int, int, Any]]
    bound: float


@dataclasses.dataclass
class BatchSize:
    """What every round of one batch size shares. ``size`` replica slots run in every round
    (so every round reuses the same programs); ``rounds`` keeps, for each round trained, its
    noise checkpoints and the states of the replicas it pruned; ``origin`` maps each replica
    of the result to ``(round, slot)`` (None: an earlier run's replica)."""

    session: Session
    batch_size: int
    lay: Layout
    group: int | None
    fine_split: str
    coarse_split: str
    coarse_data: Any
    sample_data: Any
    probes: tuple[bool, ...]
    clock: Clock
    prune: bool
    on_chunk: Callable[[int, int], None] | None
    size: int
    programs: Programs | None = None
    rounds: list[RoundResult] = dataclasses.field(default_factory=list)
    origin: list[tuple[int, int] | None] = dataclasses.field(default_factory=list)

    @classmethod
    def of(
        cls,
        session: Session,
        batch_size: int,
        replica_batch: int | None | str,
        prune: bool,
        on_chunk: Callable[[int, int], None] | None,
    ) -> BatchSize:
        config = session.config
        n = session.workload.data.num_train
        spe = steps_per_epoch(n, batch_size, config.training.remainder)
        m = config.measurement
        lay = with_coarse(layout(spe, config.budget.steps_at(spe), m.evals, batch_size), m.coarse_evals)
        fine_split = config.target.split
        coarse_split = "train" if fine_split == "test" else "test"
        coarse = session.split(coarse_split)
        rows = fixed_subsample(int(coarse[0].shape[0]), m.eval_examples)
        sample = fixed_subsample(n, m.sample_examples, seed=3)  # the training loss on a fixed set
        train = session.train
        return cls(
            session=session,
            batch_size=batch_size,
            lay=lay,
            group=replica_group(batch_size) if replica_batch == "auto" else replica_batch,
            fine_split=fine_split,
            coarse_split=coarse_split,
            coarse_data=coarse if rows is None else tuple(a[rows] for a in coarse),
            sample_data=None if not m.sample_examples else train if sample is None else tuple(a[sample] for a in train),
            probes=probe_chunks(lay, m.noise_checkpoints),
            clock=Clock(),
            prune=prune,
            on_chunk=on_chunk,
            size=len(replica_grid(config)),
        )

    @property
    def config(self):
        return self.session.config

    @property
    def whole(self) -> bool:
        """Full-batch descent: the split as it is, no order, no indices."""
        n = self.session.workload.data.num_train
        return self.batch_size == n and self.config.training.remainder == "keep"

    def program(self, key: tuple, fn: Callable[..., Any], *args: Any, in_axes: tuple, donate=()) -> Program:
        """A program of this batch size's replica slots, built once per sweep (the session's ``engine.Programs``)."""
        with self.clock.compiling():
            return self.session.programs.get(
                key, fn, *args, in_axes=in_axes, donate_argnums=donate, replica_batch=self.group
            )

    def build(self, carry: Any, batches: tuple[Any, ...]) -> Programs:
        """Compiles the batch size's programs for ``carry`` (every slot) and a chunk's ``batches``."""
        session, states = self.session, carry[0]
        with self.clock.compiling():
            train = session.train_program(carry, batches, whole=self.whole, group=self.group)
            fine = session.evaluation(states, session.split(self.fine_split), replicas=True, group=self.group)
            coarse = session.evaluation(states, self.coarse_data, replicas=True, group=self.group)
            sample = (
                None
                if self.sample_data is None
                else session.evaluation(states, self.sample_data, replicas=True, group=self.group)
            )
        return Programs(
            train=train,
            fine=fine,
            coarse=coarse,
            sample=sample,
            settle=self.program(
                ("settle",), settle, states, states, states, carry[1], carry[1], in_axes=(0, 0, 0, 0, 0), donate=(1, 2)
            ),
            copy=self.program(("copy",), lambda c: jax.tree.map(lambda v: v.copy(), c), carry, in_axes=(0,)),
        )

    def trained(self, entries: list[Entry], extension_round: int, bound: float) -> RoundResult:
        """A round of ``entries`` (marked with their ``extension`` round), filed under
        ``rounds`` (its checkpoints and kept states), its replicas' places under ``origin``."""
        out = Round(self, entries, prune=self.prune, bound=bound).run()
        self.rounds.append(out)
        self.origin.extend((len(self.rounds) - 1, slot) for slot in range(len(out.replicas)))
        for r in out.replicas:
            r.extension = extension_round
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

    def __init__(
        self,
        bs: BatchSize,
        entries: list[Entry],
        *,
        prune: bool,
        replay: bool = False,
        bound: float = math.inf,
        resume: Resume | None = None,
    ):
        session, size = bs.session, bs.size
        config = session.config
        self.bs, self.entries, self.prune, self.replay, self.resume = bs, entries, prune, replay, resume
        parked = size - len(entries)
        self.slots = entries + [entries[0]] * parked
        seeds = [seed for _, seed in self.slots]
        self.values = [
            replica_values(config, h, bs.batch_size, bs.lay.total_steps, session.optimizer.values)
            for h, _ in self.slots
        ]
        if resume is None:
            states = init_replicas(
                session.workload.model, session.optimizer.tx, seeds, self.values, initial=session.initial
            )
            guards = [init_guard()] * len(entries)
        else:  # host copies, stacked on the host: one transfer, no eager device operations
            states = jax.device_put(stack_host([st for st, _ in resume[2]] + [resume[2][0][0]] * parked))
            guards = [g for _, g in resume[2]]
        guards = guards + [init_guard()._replace(diverged=jnp.ones((), bool))] * parked
        self.carry = (states, stack(guards))
        self.replica_bytes = sum(v.nbytes for v in jax.tree.leaves(self.carry)) // size
        self.twin = np.asarray([seeds.index(s) for s in seeds])  # a slot's first with its seed: same weights at step 0
        n, remainder = session.workload.data.num_train, config.training.remainder
        self.tables = functools.lru_cache(maxsize=1)(  # every chunk of an epoch cuts from the same tables
            lambda epoch: epoch_tables(seeds, epoch, n, bs.batch_size, remainder)
        )
        if bs.programs is None:
            bs.programs = bs.build(self.carry, self.batches(0))
        self.record = Recorder(size, bs.lay, bs.fine_split, bs.coarse_split)
        self.real = np.arange(size) < len(entries)
        target = config.target
        self.watch = Watch(
            [(h if i < len(entries) else {"parked": i}, s) for i, (h, s) in enumerate(self.slots)],
            target.metric.split("_", 1)[1],
            target.value,
            target.higher_is_better,
            prune=prune,
            bound=bound,
        )
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
            metrics = self.evaluate(bs.programs.fine, bs.session.split(bs.fine_split), need)
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

    def run(self) -> RoundResult:
        """Trains chunk by chunk: each chunk's steps, then at a segment's end the settle of
        exploded replicas back to a finite state, the fine and coarse evaluations where the
        cadence has them, and the noise checkpoints."""
        bs, record, programs, clock, lay = self.bs, self.record, self.bs.programs, self.bs.clock, self.bs.lay
        train = bs.session.train
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
            self.carry, out = clock.call(part, programs.train, self.carry, train, idx, mask, active)
            record.chunk(c, jax.device_get(out), active)
            if lay.coarse[c]:  # end of a segment: exploded replicas go back to a finite state
                state, prev_state, start = clock.call(
                    "other", programs.settle, start[0], prev[0], self.carry[0], start[1], self.carry[1]
                )
                self.carry, prev = (state, self.carry[1]), (prev_state, self.carry[1])
            if lay.evaluate[c]:
                self.fine(everyone=lay.coarse[c] or self.replay, c=c)
                if bs.on_chunk is not None:
                    bs.on_chunk(c + 1, lay.num_chunks)
                if self.replay and np.all(self.watch.reached_at[self.real] >= 0):
                    break
            if lay.coarse[c] and not self.replay:
                record.coarse(
                    record.steps_done,
                    clock.call("evaluate", programs.coarse, self.carry[0], bs.coarse_data, self.live()),
                )
            if bs.probes[c] and not self.replay:
                self.checkpoints.append((record.steps_done, clock.call("noise", jax.device_get, self.carry[0])))
        return self.result()

    def result(self) -> RoundResult:
        """The round's entries' replicas (curves, divergence, pruning) and what the program
        counted, with the states it kept apart."""
        n = len(self.entries)
        guard = jax.device_get(self.carry[1])
        reps = replicas(self.slots, self.values, self.record, guard, self.bs.lay)[:n]
        for rep, at in zip(reps, self.watch.pruned_at, strict=False):
            rep.pruned_at_step = at
        return RoundResult(
            replicas=reps,
            counted=self.record.counted(guard),
            evaluations=Evaluations(fine=len(self.record.fine_points), coarse=len(self.record.coarse_points)),
            checkpoints=[(step, jax.tree.map(lambda v: v[:n], st)) for step, st in self.checkpoints],
            pruned=self.pruned,
            bound=self.watch.best,
        )


def peak_rss() -> int:
    """The process's peak resident memory so far, in bytes (``getrusage``: kilobytes on Linux)."""
    import resource
    import sys

    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return int(peak if sys.platform == "darwin" else peak * 1024)


def run_batch_size(
    session: Session,
    batch_size: int,
    on_chunk: Callable[[int, int], None] | None = None,
    replica_batch: int | None | str = "auto",
    prune: bool = True,
    previous: BatchSizeResult | None = None,
) -> BatchSizeResult:
    """Trains every (learning rate x seed) replica at ``batch_size`` and returns the raw
    curves: per replica, the fine points (the target's split, mini-batch loss means, the
    fixed sample's loss) and the coarse ones (the other split), divergence (exact step) and,
    at the best setting, the noise scale along training; per batch size, the examples and
    updates per epoch as the program counted them, and where the time went.

    ``replica_batch``: how many replicas run vmapped together ("auto":
    ``engine.replica_group``; None: all, as accelerators do). ``prune``: stop the fine
    evaluations of replicas that can no longer be the best (``Watch``); False evaluates
    every replica at every fine point (the reference the tests compare with). ``previous``:
    this batch size's result from an earlier run of a smaller grid (the config only added
    learning rates, other swept values or seeds): its replicas are kept and only the new
    grid points train.
    """
    bs = BatchSize.of(session, batch_size, replica_batch, prune, on_chunk)
    result, bound = train_grid(bs, previous)
    extend_grid(bs, result, bound)
    ds = session.workload.data
    result.replica_batch = bs.group
    result.tokens_per_example = int(np.prod(ds.y_train.shape[1:])) if session.workload.classification else 1
    result.memory = bs.programs.train.memory  # XLA's plan for the training program of every replica
    result.peak_rss = peak_rss()
    result.evaluation = Splits(
        fine=bs.fine_split,
        coarse=bs.coarse_split,
        coarse_examples=int(bs.coarse_data[0].shape[0]),
        coarse_of=int(session.split(bs.coarse_split)[0].shape[0]),
        sample_examples=0 if bs.sample_data is None else len(bs.sample_data[0]),
    )
    _, chosen = settle_best(result, session.config, functools.partial(replay, bs, result))
    probe_best(bs, result, chosen)
    result.time = bs.clock.summary()
    if previous is not None and previous.time is not None:  # the earlier run's time, and this one's
        result.time = TimeSpent(
            **{k: getattr(previous.time, k) + getattr(result.time, k) for k in TIME_PARTS},
            wall=previous.time.wall + result.time.wall,
            c11_demo=previous.time.c11_demo,
        )
    return result


def train_grid(bs: BatchSize, previous: BatchSizeResult | None) -> tuple[BatchSizeResult, float]:
    """The grid's round, or, when ``previous`` holds an earlier run of a smaller grid, its
    replicas and a round of the points the grid gained; with the best mean steps so far."""
    grid = replica_grid(bs.config)
    if previous is None:
        out = bs.trained(grid, 0, math.inf)
        return BatchSizeResult(
            batch_size=bs.batch_size,
            steps_per_epoch=bs.lay.steps_per_epoch,
            budget_steps=bs.lay.total_steps,
            chunk_steps=bs.lay.chunk_steps,
            evaluations=out.evaluations,
            replicas=out.replicas,
            counted=out.counted,
        ), out.bound
    result = msgspec.structs.replace(
        msgspec.convert(msgspec.to_builtins(previous), BatchSizeResult),
        time=None,
        timing=None,
        failures={},
        compilations=None,
    )  # a copy: the document keeps it
    bs.origin = [None] * len(result.replicas)
    have = {(setting(rep), rep.seed) for rep in result.replicas}
    new = [(h, seed) for h, seed in grid if (tuple(sorted(h.items())), seed) not in have]
    new_seeds = set(bs.config.grid.seeds) - {rep.seed for rep in previous.replicas}
    bound = math.inf if new_seeds else settled_bound(bs.config, previous)  # a mean over other seeds is no bound
    extra = bs.trained(new, 0, bound)
    result.replicas += extra.replicas
    return result, min(bound, extra.bound)


def extend_grid(bs: BatchSize, result: BatchSizeResult, bound: float) -> None:
    """While the best learning rate sits on the grid's edge, rounds of the next half-decades
    beyond it (``grid.extension``), up to ``extend_grid`` added settings in all, in the same
    programs; each round starts from the earlier rounds' best (``bound``)."""
    grid = bs.config.grid
    added = len({setting(r) for r in result.replicas if r.extension})
    round_ = max(r.extension for r in result.replicas)
    while added < grid.extend_grid:
        more = extension(bs.config, result, min(bs.size // len(grid.seeds), grid.extend_grid - added))
        if not more:
            break
        round_, added = round_ + 1, added + len(more)
        extra = bs.trained([(values, seed) for values in more for seed in grid.seeds], round_, bound)
        bound = min(bound, extra.bound)
        result.replicas += extra.replicas


def replay(bs: BatchSize, result: BatchSizeResult, todo: list[int]) -> None:
    """Trains the pruned replicas ``todo`` of ``result`` again from where they were pruned
    (from the start where the state was not kept: ``KEEP_BYTES``, or an earlier run's), the
    same trajectory with every fine point evaluated, and fills their curves in; one replay
    per pruning point. A failure is recorded (``clock.attempt``)."""
    groups: dict[tuple[int, int] | None, list[tuple[int, Any]]] = {}
    for r in todo:
        at = bs.origin[r]
        c, step, state = bs.rounds[at[0]].pruned.get(at[1], (None, None, None)) if at else (None, None, None)
        groups.setdefault(None if state is None else (c, step), []).append((r, state))
    for at, these in groups.items():
        entries = [(dict(setting(result.replicas[r])), result.replicas[r].seed) for r, _ in these]
        resume = None if at is None else (*at, [st for _, st in these])
        rerun = functools.partial(Round, bs, entries, prune=False, replay=True, resume=resume)
        again = attempt(result, "replay", lambda rerun=rerun: rerun().run())
        for (r, _), rep in zip(these, again.replicas if again else [], strict=False):
            merge_replay(result.replicas[r], rep)


def probe_best(bs: BatchSize, result: BatchSizeResult, chosen: list[int]) -> None:
    """The gradient noise scale at the checkpoints of the best setting's replicas (those
    trained here, whose states were kept), filled into their replicas; a failure is
    recorded (``clock.attempt``)."""
    probed: dict[int, list[tuple[int, int]]] = {}  # round -> (replica, slot)
    for r in chosen:
        if bs.origin[r] is not None and bs.rounds[bs.origin[r][0]].checkpoints:
            probed.setdefault(bs.origin[r][0], []).append((r, bs.origin[r][1]))
    for at, these in probed.items():
        noise = attempt(
            result,
            "noise",
            probe_replicas,
            bs.session,
            bs.rounds[at].checkpoints,
            [slot for _, slot in these],
            bs.clock,
        )
        if noise:
            curves, estimate = noise
            for (r, _), curve in zip(these, curves, strict=True):
                result.replicas[r].noise = curve
            result.noise_estimate = estimate
