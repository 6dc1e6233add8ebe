"""Divergence: a replica whose loss explodes is frozen at a finite state from before the
explosion, and the update that blew it up is recorded.

A sweep trains many (learning rate x seed) replicas in one program, and the largest
learning rates explode. The check costs nothing measurable, because it reads only the loss
each step computes anyway: the loss of the state an update starts from must be finite and
at most ``explosion_factor`` times the replica's first mini-batch loss. (A check on the
parameters after every update costs a full extra pass over them and keeps XLA from
updating them in place: +60% per step at B = 1, measured. The loss covers it: a non-finite
parameter makes the next loss non-finite.)

A state is only known to be good once a step has computed its loss, so the state an
exploding update produced cannot be undone by the step that finds it. The sweep therefore
trains in chunks and keeps each chunk's first state and the previous chunk's first state:
at the end of a chunk, a replica that exploded in it is set back to the first state of
the chunk whose update produced the exploded state (``settle``). Both candidates passed the
check, so a frozen replica holds finite weights and its evaluations stay finite; under
``vmap`` the other replicas go on untouched.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp

from jbatch.core.engine import traced_once
from jbatch.core.step import Batch, StepFn, TrainState, skipped

# Cross-entropy starts near log(classes) (2.3 for 10 classes); a loss 1,000x its starting
# value means logits hundreds of units wrong, and the updates that follow overflow float32
# within a few steps (a learning rate of 1e4 on digits: 2.3 -> 2.3e7 -> 7.6e14 -> 8e22).
EXPLOSION_FACTOR = 1e3


class Guard(NamedTuple):
    """One replica's divergence record, carried through training next to its state."""

    diverged: jax.Array  # bool
    step: jax.Array  # int32: the update that produced the exploded state (0: the initial one); -1: none
    reference: jax.Array  # float32: the replica's first mini-batch loss, the bound's unit


def init_guard() -> Guard:
    """A replica that has not diverged and has not taken its first step."""
    return Guard(jnp.zeros((), bool), jnp.full((), -1, jnp.int32), jnp.zeros((), jnp.float32))


def make_checked_step(step: StepFn, explosion_factor: float = EXPLOSION_FACTOR):
    """Wraps ``step`` into ``checked((state, guard), batch) -> ((state, guard), metrics)``,
    which records the first explosion in ``guard``. The update that is checked is applied
    regardless (the chunk's ``settle`` undoes it), so the weights are still updated in place;
    the loss that tripped the check is reported as it was. A replica already diverged skips
    its steps (a real branch when replicas run one by one, a select under ``vmap``) and
    reports NaN.

    Examples:
      >>> import optax
      >>> from jbatch.core.loss import softmax_cross_entropy
      >>> from jbatch.workloads.model import make_model
      >>> from jbatch.core.step import init_train_state, make_train_step
      >>> state = init_train_state(make_model("linear", 4, 3), optax.sgd(1e6))
      >>> checked = make_checked_step(make_train_step(softmax_cross_entropy))
      >>> batch = Batch(jax.random.normal(jax.random.key(0), (8, 4)), jnp.arange(8) % 3)
      >>> carry = (state, init_guard())
      >>> for _ in range(3):
      ...     carry, m = checked(carry, batch)
      >>> guard = carry[1]  # update 1 blew the loss up, as step 2 found; step 3 was skipped
      >>> bool(guard.diverged), int(guard.step), int(carry[0].step), bool(jnp.isnan(m["loss"]))
      (True, 1, 2, True)
    """
    if not explosion_factor > 1:
        raise ValueError(f"explosion_factor must be > 1, got {explosion_factor}")

    step = traced_once(step)  # traced for its shapes and in the branch: once

    def update(carry: tuple[TrainState, Guard], batch: Batch):
        state, guard = carry
        new, metrics = step(state, batch)
        loss = metrics["loss"]
        reference = jnp.where(state.step == 0, loss, guard.reference).astype(jnp.float32)
        too_big = jnp.where(reference > 0, loss > explosion_factor * reference, False)
        exploded = ~guard.diverged & (~jnp.isfinite(loss) | too_big)
        out = Guard(guard.diverged | exploded, jnp.where(exploded, state.step, guard.step), reference)
        return (new, out), metrics

    def checked(carry: tuple[TrainState, Guard], batch: Batch):
        shape = jax.eval_shape(step, carry[0], batch)[1]
        return jax.lax.cond(carry[1].diverged, lambda c: (c, skipped(shape)), lambda c: update(c, batch), carry)

    return checked


def settle(start: TrainState, prev: TrainState, end: TrainState, before: Guard, after: Guard):
    """The end of a chunk: ``(state, prev, start)`` to carry into the next one.

    ``start`` is the chunk's first state, ``prev`` the previous chunk's first state,
    ``end`` the state after the chunk's updates, ``before``/``after`` the guard around it.
    A replica that stayed healthy goes on from ``end``. One that exploded in this chunk is
    set back to the first state of the chunk whose update produced the exploded state:
    ``start`` if that update is in this chunk, ``prev`` if the exploded state is ``start``
    itself (made by the previous chunk's last update). One that was already frozen stays.
    ``start`` comes back as a copy of the settled state and its guard: the next chunk's first
    state, which must outlive the training call that donates the state.
    """
    newly = after.diverged & ~before.diverged
    back = jnp.where(after.step == start.step, 0, 1)  # 0: prev, 1: start

    def pick(e, s, p):
        restored = jnp.where(back == 1, s, p)
        return jnp.where(before.diverged, s, jnp.where(newly, restored, e))

    state = jax.tree.map(pick, end, start, prev)
    prev = jax.tree.map(lambda new, s: jnp.where(after.diverged, new, s), state, start)
    return state, prev, jax.tree.map(jnp.copy, (state, after))
