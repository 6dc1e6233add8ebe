"""The local critical batch size along training, measured by branching (Merrill et al. 2025,
"Critical batch size revisited").

One small-batch run (the trunk: batch size ``B0``, learning rate ``lr``) is stopped at
checkpoints. From each, short branches train at ``k x B0`` for a fixed number of examples
(``examples``; ``examples / (k B0)`` steps, at least one), the learning rate set by a rule
(``jbatch.core.phases``: ``sqrt`` or ``linear`` from ``lr``), every branch of a checkpoint on
the same data order (a paired comparison). With ``lr_factors``, each branch above ``B0`` is
trained at the rule's learning rate times each factor in turn, until one ends within the plan's
tolerance of the ``k = 1`` continuation, and keeps its best (a critical batch size is defined
at a tuned learning rate; a rule applied to a short run's aggressive rate can leave the stable
range long before the batch size stops helping). A branch's loss is the held-out loss averaged over
its last ``AVERAGED`` evaluations, at a quarter, half, three quarters and the end of its
examples (a single SGD iterate bounces by tens of percent on a small problem). ``B*`` is the
largest ``k x B0`` such that every branch up to it ends with a loss within ``tolerance`` of
the ``k = 1`` continuation's: ``loss_k <= loss_1 + tolerance x |loss_1|``; per seed, and for
the checkpoint (``b_star_median``) from each batch size's median loss over the seeds. A
``B*`` at the largest multiplier tried is a lower bound (``censored``). The gradient noise scale ``B_simple``
(``jbatch.sweeps.noise``) is measured on the same checkpoint, so the two can be set side by
side: McCandlish et al. 2018 predict the critical batch size from it.

Each seed is its own trunk (initial weights and data order); the report gives ``B*`` per seed
and its median. Everything is ``jbatch.core.phases.train_phases``: one compiled program per
batch size for the trunk and every branch.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable
from typing import Any

import msgspec
import numpy as np

from jbatch.config import RULES
from jbatch.core.guard import EXPLOSION_FACTOR
from jbatch.core.phases import Phase, phase_learning_rates, train_phases
from jbatch.core.step import TrainState
from jbatch.errors import ConfigError
from jbatch.results.records import Branching
from jbatch.sweeps.noise import gradient_moments
from jbatch.sweeps.session import Session

AVERAGED = 3  # the last evaluations of a branch whose held-out losses are averaged


@dataclasses.dataclass(frozen=True)
class BranchPlan:
    """What to branch: the trunk's batch size and learning rate, the trunk steps to branch
    at, the multipliers of ``B0`` to try, the examples each branch trains, the tolerance,
    the learning-rate rule, the factors of the rule's rate each larger branch tries, and the
    seeds (one trunk each)."""

    batch_size: int
    learning_rate: float
    checkpoints: tuple[int, ...]
    examples: int
    multipliers: tuple[int, ...] = (1, 2, 4, 8, 16, 32)
    tolerance: float = 0.01
    rule: str = "sqrt"
    seeds: tuple[int, ...] = (0, 1)
    noise_examples: int = 1024
    lr_factors: tuple[float, ...] = (1.0,)
    ceiling: int = 0  # B* may be read up to this batch size (extension rounds); 0: the largest multiplier's
    max_examples: int = 0  # an extension round's examples at most; 0: the training set's size

    def check(self, num_examples: int) -> None:
        """One clear line for a plan that cannot run on ``num_examples`` training examples."""
        if not 1 <= self.batch_size <= num_examples:
            raise ConfigError(f"the trunk's batch size must be 1 to {num_examples}, got {self.batch_size}")
        if not self.checkpoints or list(self.checkpoints) != sorted(set(self.checkpoints)) or self.checkpoints[0] < 0:
            raise ConfigError(f"checkpoints must be increasing trunk steps >= 0, got {list(self.checkpoints)}")
        if not self.multipliers or self.multipliers[0] != 1 or list(self.multipliers) != sorted(set(self.multipliers)):
            raise ConfigError(f"multipliers must start at 1 and increase, got {list(self.multipliers)}")
        if self.examples < self.batch_size:
            raise ConfigError(
                f"each branch must train at least one batch ({self.batch_size} examples), got {self.examples}"
            )
        if not self.lr_factors or not all(f > 0 for f in self.lr_factors):
            raise ConfigError(f"learning-rate factors must be positive, got {list(self.lr_factors)}")
        if self.rule not in RULES or not self.tolerance >= 0:
            raise ConfigError(
                f"rule must be one of {', '.join(RULES)} and the tolerance >= 0; got {self.rule!r}, {self.tolerance}"
            )


def b_star(losses: dict[int, float], tolerance: float) -> int:
    """The largest batch size whose branch, and every smaller one's, ends within
    ``tolerance`` (relative) of the smallest batch size's loss.

    Examples:
      >>> b_star({16: 2.00, 32: 2.01, 64: 2.03, 128: 2.01}, 0.01)  # 64 is out: 128 does not count
      32
      >>> b_star({16: 2.00, 32: float("nan")}, 0.5)
      16
    """
    sizes = sorted(losses)
    ref = losses[sizes[0]]
    best = sizes[0]
    for b in sizes[1:]:
        if not losses[b] <= ref + tolerance * abs(ref):  # NaN (diverged) fails too
            break
        best = b
    return best


def tolerance_at(reference: dict[str, float], floor: float) -> float:
    """The tolerance of one checkpoint: ``floor`` or the seeds' own spread of the ``k = 1``
    continuation's loss, whichever is larger: a branch within the seeds' spread of the
    continuation cannot be told from it. The spread is robust (1.4826 x the median absolute
    deviation over seeds, relative to their median: the standard deviation for normal scatter,
    and one seed's bounce, such as a B = 1 continuation at 3.5 where the others are at 0.6 to
    0.9, does not make every branch "within").

    Examples:
      >>> round(tolerance_at({"0": 2.0, "1": 2.2}, 0.05), 4)  # 1.4826 x 0.1 / 2.1
      0.0706
      >>> round(tolerance_at({"0": 0.857, "1": 0.582, "2": 3.54}, 0.05), 3)  # 0.476; the std's would be 1.91
      0.476
      >>> tolerance_at({"0": 2.0}, 0.05)  # one seed: no spread
      0.05
    """
    v = np.array([x for x in reference.values() if np.isfinite(x)], float)
    if v.size < 2:
        return floor
    median = float(np.median(v))
    return max(floor, 1.4826 * float(np.median(np.abs(v - median))) / abs(median))


def extension_sizes(top: int, plan: BranchPlan) -> tuple[list[int], int]:
    """The branch sizes and examples of the next extension round from a B* censored at ``top``:
    ``top`` (the round's reference: the previous round found it as good as ``B0``), then ``top``
    times the plan's multipliers up to the ceiling (the ceiling itself last; none that would
    take fewer than two steps of ``max_examples``), with examples for four steps of the largest,
    at most ``max_examples``. Empty when nothing is above ``top``. Chained so, the tolerance
    compounds over rounds (each asks whether going past the last B* loses more than it); a
    reference at ``B0`` would train ``examples / B0`` steps, and a branch that long separates
    batch sizes that equal examples leave within a few per cent on the sweep's horizon.

    Examples:
      >>> plan = BranchPlan(batch_size=1, learning_rate=0.1, checkpoints=(0,), examples=256,
      ...                   multipliers=(1, 4, 16, 64), ceiling=40000, max_examples=40000)
      >>> extension_sizes(64, plan)
      ([64, 256, 1024, 4096], 16384)
      >>> extension_sizes(4096, plan)
      ([4096, 16384], 40000)
    """
    above = [top * k for k in plan.multipliers[1:] if top * k < plan.ceiling] + [plan.ceiling]
    above = [b for b in above if top < b and 2 * b <= plan.max_examples]
    if not above:
        return [], 0
    return [top, *above], min(4 * above[-1], plan.max_examples)


def local_critical_batch(
    session: Session,
    init_state: Callable[[int], TrainState],
    plan: BranchPlan,
    on_checkpoint: Callable[[dict[str, Any]], None] | None = None,
) -> Branching:
    """Runs ``plan`` (see the module's docstring) on the session's workload: ``init_state(seed)``
    is a fresh ``TrainState`` whose optimizer injects its learning rate; the branches are
    compared on the session's test split. Returns one entry per checkpoint with the trunk's
    step, examples and held-out loss, each branch's loss per batch size and seed, the
    checkpoint's tolerance (``tolerance_at``), ``b_star`` per seed (and ``censored``) and
    ``b_simple`` per seed. Where the median B* is censored below the plan's ``ceiling``, every seed
    branches again from the same trunk state at larger batch sizes with more examples
    (``extension_sizes``; recorded under ``extensions``) until B* is found, the ceiling is
    reached or the examples would pass its ``max_examples``. Every program is the session's.
    ``on_checkpoint(entry)`` after each seed's checkpoint (progress)."""
    train, held_out = session.train, session.test
    n = int(train[0].shape[0])
    plan.check(n)
    plan = dataclasses.replace(plan, ceiling=min(plan.ceiling, n), max_examples=plan.max_examples or n)
    step, programs, loss_fn = session.step, session.programs, session.workload.loss

    def evaluate(state: TrainState) -> float:  # the held-out loss: what B* compares
        return float(session.evaluation(state, held_out)(state, held_out)["loss"])

    def moments(state: TrainState, data: Any) -> float:
        probe = functools.partial(gradient_moments, loss_fn=loss_fn, group=1, population=False)
        return float(programs.get(("moments", loss_fn), probe, state, data)(state, data)["b_simple"])

    def branch(
        state: TrainState, seed: int, i: int, b: int, examples: int, reference: float | None = None
    ) -> tuple[float, float | None]:
        """The branch at ``b`` from ``state``: its loss at its best learning-rate factor, and the
        factor. With the round's ``reference`` loss, the factors are tried in turn only until one
        ends within the plan's tolerance of it (the checkpoint's tolerance is at least that, so
        the rest could only confirm what B* reads; it saves most of a branch's cost)."""
        rule_lr = phase_learning_rates(plan.learning_rate, [Phase(plan.batch_size, 1), Phase(b, 1)], plan.rule)[1]
        tried = {}
        for factor in plan.lr_factors if b > plan.batch_size else (1.0,):
            seen: list[float] = []
            steps = max(1, round(examples / b))

            def record(s, *_, seen=seen):
                seen.append(evaluate(s))

            train_phases(
                state,
                step,
                train,
                [Phase(b, steps)],
                learning_rates=[rule_lr * factor],
                seed=10_000 + 1_000 * seed + i,
                programs=programs,
                every_examples=b * -(-steps // 4),
                callback=record,
            )
            tried[factor] = float(np.mean(seen[-AVERAGED:]))  # NaN when any diverged
            if reference is not None and tried[factor] <= reference + plan.tolerance * abs(reference):
                break
        finite = {f: v for f, v in tried.items() if np.isfinite(v)}
        return (min(finite.values()), min(finite, key=finite.__getitem__)) if finite else (float("nan"), None)

    def branch_all(states: dict[int, TrainState], i: int, sizes: list[int], examples: int) -> dict[str, Any]:
        out: dict[str, Any] = {"branches": {str(b): {} for b in sizes}, "factors": {str(b): {} for b in sizes}}
        for seed, state in states.items():
            for b in sizes:  # the first is the round's reference: its best of every factor
                first = out["branches"][str(sizes[0])].get(str(seed))
                loss, factor = branch(state, seed, i, b, examples, None if b == sizes[0] else first)
                out["branches"][str(b)][str(seed)], out["factors"][str(b)][str(seed)] = loss, factor
        return out

    probe = min(plan.noise_examples, n)
    rows = np.random.default_rng(0).permutation(n)[:probe]
    noise_data = (train[0][rows], train[1][rows])
    sizes = [k * plan.batch_size for k in plan.multipliers if k * plan.batch_size <= n]
    out = [{"step": c, "examples": c * plan.batch_size, "loss": {}, "b_simple": {}} for c in plan.checkpoints]
    kept: list[dict[int, TrainState]] = [{} for _ in plan.checkpoints]  # the trunk's states, for extensions
    for seed in plan.seeds:
        state, epoch, done = init_state(seed), 0, 0
        for i, c in enumerate(plan.checkpoints):
            if c > done:
                state, records = train_phases(
                    state,
                    step,
                    train,
                    [Phase(plan.batch_size, c - done)],
                    learning_rates=[plan.learning_rate],
                    seed=seed,
                    first_epoch=epoch,
                    programs=programs,
                )
                epoch, done = records[-1].epochs[-1] + 1, c
            entry = out[i]
            entry["loss"][str(seed)] = evaluate(state)
            loss, first = entry["loss"][str(seed)], out[0]["loss"][str(seed)]
            if not np.isfinite(loss) or loss > EXPLOSION_FACTOR * abs(first):  # the sweep's divergence rule
                raise ConfigError(
                    f"the trunk (B = {plan.batch_size}, lr {plan.learning_rate:g}, seed {seed}) diverged "
                    f"by step {c} (held-out loss {loss:.3g}): nothing to branch from; give a smaller "
                    "learning rate or a larger trunk batch size"
                )
            entry["b_simple"][str(seed)] = moments(state, noise_data)
            kept[i][seed] = state
            for key, value in branch_all({seed: state}, i, sizes, plan.examples).items():
                for b, per_seed in value.items():
                    entry.setdefault(key, {}).setdefault(b, {}).update(per_seed)
            if on_checkpoint:
                on_checkpoint({"seed": seed, "checkpoint": i, **entry})
    for i, entry in enumerate(out):
        entry["tolerance"] = tolerance_at(entry["branches"][str(plan.batch_size)], plan.tolerance)
        _read(entry, sizes, entry["tolerance"])
        entry["extensions"] = []
        while entry["censored_median"]:
            more, examples = extension_sizes(int(entry["b_star_median"]), plan)
            if not more:
                break
            ext = {"examples": examples, "batch_sizes": more, **branch_all(kept[i], i, more, examples)}
            _read(ext, more, entry["tolerance"])
            entry["extensions"].append(ext)
            for seed in entry["b_star"]:  # a seed's censored B* goes on from the extension's reference
                if entry["censored"][seed]:
                    entry["b_star"][seed], entry["censored"][seed] = ext["b_star"][seed], ext["censored"][seed]
            entry["b_star_median"], entry["censored_median"] = ext["b_star_median"], ext["censored_median"]
            if on_checkpoint:
                on_checkpoint({"checkpoint": i, "extension": ext})
        entry["b_simple_median"] = float(np.median(list(entry["b_simple"].values())))
    return msgspec.convert({"plan": dataclasses.asdict(plan), "batch_sizes": sizes, "checkpoints": out}, Branching)


def _read(entry: dict[str, Any], sizes: list[int], tolerance: float) -> None:
    """B* per seed and of the seeds' median losses over ``sizes`` (censored: the largest was within)."""
    seeds = next(iter(entry["branches"].values())).keys()
    for seed in seeds:
        found = b_star({b: entry["branches"][str(b)][seed] for b in sizes}, tolerance)
        entry.setdefault("b_star", {})[seed] = found
        entry.setdefault("censored", {})[seed] = found == sizes[-1] and len(sizes) > 1
    pooled = {b: float(np.median(list(entry["branches"][str(b)].values()))) for b in sizes}
    entry["b_star_median"] = b_star(pooled, tolerance)  # of the seeds' median losses
    entry["censored_median"] = entry["b_star_median"] == sizes[-1] and len(sizes) > 1


def plan_checkpoints(total_steps: int, count: int) -> tuple[int, ...]:
    """``count`` log-spaced trunk steps up to ``total_steps`` (the first at step 0).

    Examples:
      >>> plan_checkpoints(1000, 4)
      (0, 10, 100, 1000)
      >>> plan_checkpoints(20, 2)
      (0, 20)
    """
    if count < 2:
        return (total_steps,)
    if count == 2:  # np.geomspace of one point is its start, not the end
        return (0, total_steps)
    inner = np.unique(np.round(np.geomspace(max(1, total_steps / 100), total_steps, count - 1)).astype(int))
    return (0, *[int(s) for s in inner])
