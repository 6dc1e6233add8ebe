"""Batch-size schedules: one run whose batch size changes at given steps (e.g. 16 -> 64 -> 256),
the training state carried across, the learning rate set per phase by a stated rule.

A phase is ``Phase(batch_size, steps)``. Within a phase training is Keras-exact: each epoch
visits the data in ``epoch_order(seed, epoch, N)`` cut into ``ceil(N / B)`` batches, the last
one partial (padded and masked); a phase whose steps end inside an epoch stops after that
epoch's first batches, and the next phase starts a new epoch (epochs are counted across the
whole run, so no order repeats). The learning rate of phase ``k`` is

- ``"constant"``: the base learning rate;
- ``"sqrt"``: ``base * sqrt(B_k / B_0)`` (the noise of a step kept, Adam's usual rule);
- ``"linear"``: ``base * B_k / B_0`` (SGD's rule below the critical batch size);

with ``B_0`` the first phase's batch size, or given per phase (``learning_rates``: re-tuned).
The optimizer must carry its learning rate as an injected hyperparameter
(``optax.inject_hyperparams``, as every jbatch optimizer does); its other state (Adam's
moments, momentum, the step count of a schedule) carries across phases unchanged.

One compiled program per batch size, whatever the phase's length: an epoch is a ``lax.scan``
over all of its batches that applies the first ``n`` (``n`` an argument, not a shape), so a
truncated epoch reuses the whole epoch's program.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from typing import Any

import jax.numpy as jnp
import numpy as np

from jbatch.config import RULES
from jbatch.core.batching import Remainder, epoch_order, steps_per_epoch
from jbatch.core.engine import Programs
from jbatch.core.epoch import make_partial_epoch
from jbatch.core.optim import get_learning_rate, set_learning_rate
from jbatch.core.step import StepFn, TrainState
from jbatch.errors import ConfigError, check_interrupt


@dataclasses.dataclass(frozen=True)
class Phase:
    """``steps`` updates at ``batch_size`` examples each."""

    batch_size: int
    steps: int


def parse_phases(text: str) -> tuple[Phase, ...]:
    """``"16:200,64:100"`` -> phases of (batch size, steps).

    Examples:
      >>> parse_phases("16:200,64:100")
      (Phase(batch_size=16, steps=200), Phase(batch_size=64, steps=100))
    """
    phases = []
    for part in text.split(","):
        b, _, s = part.strip().partition(":")
        if not (b.isdigit() and s.isdigit() and int(b) > 0 and int(s) > 0):
            raise ConfigError(
                f"a batch-size schedule is BATCH:STEPS,... of positive integers, e.g. 16:200,64:100; got {text!r}"
            )
        phases.append(Phase(int(b), int(s)))
    return tuple(phases)


def phase_learning_rates(base: float, phases: Sequence[Phase], rule: str = "sqrt") -> list[float]:
    """The learning rate of each phase under ``rule`` (see the module's docstring).

    Examples:
      >>> phase_learning_rates(0.01, [Phase(16, 10), Phase(64, 10), Phase(256, 10)], "sqrt")
      [0.01, 0.02, 0.04]
      >>> phase_learning_rates(0.01, [Phase(16, 10), Phase(64, 10)], "linear")
      [0.01, 0.04]
    """
    if rule not in RULES:
        raise ConfigError(f"unknown learning-rate rule {rule!r}; known: {', '.join(RULES)}")
    b0 = phases[0].batch_size
    power = {"constant": 0.0, "sqrt": 0.5, "linear": 1.0}[rule]
    return [base * (p.batch_size / b0) ** power for p in phases]


def check_phases(phases: Sequence[Phase], num_examples: int) -> None:
    """One clear line for a schedule that cannot run on ``num_examples`` examples."""
    if not phases:
        raise ConfigError("a batch-size schedule needs at least one phase")
    for p in phases:
        if not 1 <= p.batch_size <= num_examples or p.steps < 1:
            raise ConfigError(
                f"phase {p.batch_size}:{p.steps}: the batch size must be 1 to the {num_examples} "
                "training examples and the steps at least 1"
            )


@dataclasses.dataclass
class PhaseRecord:
    """What one phase did: its batch size, learning rate, the epochs it visited (``epoch``
    numbers of the whole run), its steps and per-step losses."""

    batch_size: int
    learning_rate: float
    first_step: int
    steps: int
    epochs: list[int]
    loss: np.ndarray


def partial_epoch_program(
    programs: Programs, step: StepFn, state: TrainState, data: tuple[Any, Any], batch_size: int, remainder: Remainder
) -> Any:
    """The compiled partial epoch at ``batch_size`` (``epoch.make_partial_epoch``: steps ``[start,
    stop)`` of an epoch in a given order) for ``state`` on ``data``, kept in ``programs`` by the step,
    batch size and remainder: the one program ``train_phases`` trains with and ``sweeps.fits``
    probes."""
    n = int(data[0].shape[0])
    at = jnp.asarray(0, jnp.int32)
    order = jnp.asarray(epoch_order(0, 0, n))
    return programs.get(
        ("partial-epoch", step, batch_size, remainder),
        make_partial_epoch(step, n, batch_size, remainder),
        state,
        data,
        order,
        at,
        at,
    )


def train_phases(
    state: TrainState,
    step: StepFn,
    data: tuple[Any, Any],
    phases: Sequence[Phase],
    *,
    base_learning_rate: float | None = None,
    rule: str = "sqrt",
    learning_rates: Sequence[float] | None = None,
    seed: int = 0,
    remainder: Remainder = "keep",
    programs: Programs | None = None,
    first_epoch: int = 0,
    every_examples: int | None = None,
    callback: Callable[[TrainState, int, int], bool] | None = None,
) -> tuple[TrainState, list[PhaseRecord]]:
    """Trains ``state`` through ``phases`` (see the module's docstring) on ``data`` (``(x, y)``,
    the whole training split, on the device). The learning rates are ``learning_rates`` (one
    per phase), else ``phase_learning_rates(base_learning_rate, phases, rule)`` (the base
    defaults to the state's current learning rate). ``programs`` (``engine.Programs``) keeps
    the compiled epochs across calls, one per step and batch size; ``first_epoch`` numbers the first epoch (a run
    continued in several calls passes the next one, so that no epoch order repeats).
    ``callback(state, step, examples)`` runs after every ``every_examples`` training examples
    (at least one step; where an epoch is cut for it, the rest of the epoch follows in the
    same order) and at the end of each phase, with the run's step and examples so far; it
    returning True ends the run there (the last record then holds the steps done).

    Examples:
      >>> import optax
      >>> from jbatch.core.loss import softmax_cross_entropy
      >>> from jbatch.core.optim import get_learning_rate
      >>> from jbatch.core.step import init_train_state, make_train_step
      >>> from jbatch.workloads.model import make_model
      >>> tx = optax.inject_hyperparams(optax.sgd)(learning_rate=0.1)
      >>> state = init_train_state(make_model("linear", 4, 3), tx)
      >>> data = (jnp.ones((10, 4)), jnp.zeros(10, jnp.int32))
      >>> state, record = train_phases(state, make_train_step(softmax_cross_entropy), data,
      ...                              [Phase(2, 7), Phase(8, 3)], base_learning_rate=0.1, rule="linear")
      >>> int(state.step), [(r.batch_size, r.learning_rate, r.epochs) for r in record]  # 5 + 2 steps, then 2 + 1
      (10, [(2, 0.1, [0, 1]), (8, 0.4, [2, 3])])
    """
    x, y = data
    n = int(x.shape[0])
    check_phases(phases, n)
    if learning_rates is None:
        if base_learning_rate is None:
            base_learning_rate = float(get_learning_rate(state.opt_state))
        learning_rates = phase_learning_rates(base_learning_rate, phases, rule)
    if len(learning_rates) != len(phases):
        raise ConfigError(f"{len(learning_rates)} learning rates for {len(phases)} phases")
    programs = Programs() if programs is None else programs
    records, epoch, first, seen = [], first_epoch, int(state.step), 0
    at = lambda v: jnp.asarray(v, jnp.int32)  # noqa: E731  a step number as the program takes it
    for p, lr in zip(phases, learning_rates, strict=True):
        state = state.replace(opt_state=set_learning_rate(state.opt_state, jnp.asarray(lr, jnp.float32)))
        order = jnp.asarray(epoch_order(seed, epoch, n))
        run = partial_epoch_program(programs, step, state, data, p.batch_size, remainder)
        per_epoch = steps_per_epoch(n, p.batch_size, remainder)
        every = max(1, every_examples // p.batch_size) if every_examples else p.steps
        left, pos, since, losses, epochs, stop = p.steps, 0, 0, [], [], False
        while left > 0 and not stop:
            check_interrupt()  # a Ctrl-C a library swallowed (``jbatch.errors.on_sigint``): stop between calls
            take = min(left, per_epoch - pos, every - since)
            order = jnp.asarray(epoch_order(seed, epoch, n))
            state, metrics = run(state, data, order, at(pos + take), at(pos))
            losses.append(np.asarray(metrics["loss"])[pos : pos + take])
            if not epochs or epochs[-1] != epoch:
                epochs.append(epoch)
            seen += _examples(pos, take, p.batch_size, n, remainder)
            pos, left, since = pos + take, left - take, since + take
            if pos == per_epoch or left == 0:  # a phase ending mid-epoch: the next one starts a new epoch
                epoch, pos = epoch + 1, 0
            if callback is not None and (since == every or left == 0):
                since = 0
                stop = bool(callback(state, first + sum(len(v) for v in losses), seen))
        done = sum(len(v) for v in losses)
        records.append(PhaseRecord(p.batch_size, float(lr), first, done, epochs, np.concatenate(losses)))
        first += done
        if stop:
            break
    return state, records


def _examples(start: int, take: int, batch_size: int, num_examples: int, remainder: Remainder) -> int:
    """Examples in batches ``start`` to ``start + take - 1`` of an epoch (a partial last one as it is)."""
    if remainder != "keep":
        return take * batch_size
    return min((start + take) * batch_size, num_examples) - min(start * batch_size, num_examples)


def examples_seen(phases: Sequence[Phase], num_examples: int, remainder: Remainder = "keep") -> int:
    """Training examples the schedule's updates use (partial last batches counted as they are).

    Examples:
      >>> examples_seen([Phase(4, 3), Phase(8, 2)], 10)  # 4 + 4 + 2, then 8 + 2
      20
    """
    total = 0
    for p in phases:
        per_epoch = steps_per_epoch(num_examples, p.batch_size, remainder)
        full, rest = divmod(p.steps, per_epoch)
        epoch_examples = num_examples if remainder == "keep" else per_epoch * p.batch_size
        total += full * epoch_examples + min(rest * p.batch_size, epoch_examples)
    return total
