"""Training steps as one ``lax.scan``, and evaluation as another: pure functions to compile.

``make_steps`` is the one scan of training steps: ``k`` batches, given as row indices into the
split already on the device, each one gathered and stepped inside the scan, so one compiled
call trains them with no Python and no host synchronisation per step. Everything that trains
is that scan with other parameters:

* ``make_epoch``: a whole Keras epoch, its batches cut from the epoch's order on the device;
* ``make_partial_epoch``: the batches ``start`` to ``n - 1`` of an epoch (``n`` and ``start``
  traced: every part of an epoch is the same program), for batch-size schedules (``phases``);
* ``make_chunk``: ``k`` checked steps of a sweep's replica (``guard``), batches cut on the host,
  steps switched off by ``active`` so that chunks end exactly at epoch ends.

A skipped step leaves the state as it was and reports a NaN loss (and zero examples).
Evaluation is a scan over fixed-size, masked batches that sums loss and correct counts.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
from jax.sharding import Sharding

from jbatch.core.batching import Remainder, epoch_batches, steps_per_epoch
from jbatch.core.engine import traced_once
from jbatch.core.guard import EXPLOSION_FACTOR, Guard, make_checked_step
from jbatch.core.step import Batch, StepFn, TrainState, skipped

Data = tuple[jax.Array, jax.Array]  # (x, y), whole split, on the device
EpochFn = Callable[[TrainState, Data, jax.Array], tuple[TrainState, dict[str, jax.Array]]]


def make_steps(
    step: Callable[..., Any], *, whole: bool = False, unroll: int = 1, sharding: Sharding | None = None
) -> Callable[..., Any]:
    """Returns ``steps(carry, (x, y), idx, mask, active) -> (carry, metrics [k])``: ``step``
    applied to the ``k`` batches ``Batch(x[idx[j]], y[idx[j]], mask[j])`` in order.

    ``idx`` is ``[k, B]`` row indices; ``mask`` ``[k, B]`` marks real rows (None: every row is
    real, and the step sees no mask); ``active`` ``[k]`` switches steps off (None: every step
    runs, and the scan has no branch). ``whole``: every batch is the split as it is (B = N;
    ``idx`` only gives ``k``). ``sharding`` splits each batch's rows over a mesh
    (``jbatch.core.parallel``). ``carry`` is what ``step`` takes: a ``TrainState``, or a
    state and its guard (``make_chunk``).
    """

    step = traced_once(step)  # traced for its shapes and in the loop: once

    def steps(carry: Any, data: Data, idx: jax.Array, mask: jax.Array | None, active: jax.Array | None):
        x, y = data

        def batch(i: jax.Array, m: jax.Array | None) -> Batch:
            b = Batch(x, y) if whole else Batch(x[i], y[i], m)
            return b if sharding is None else jax.lax.with_sharding_constraint(b, sharding)

        if whole and idx.shape[0] == 1 and active is None:  # full-batch descent, one step: no loop at all
            carry, metrics = step(carry, batch(None, None))
            return carry, jax.tree.map(lambda v: v[None], metrics)
        shape = jax.eval_shape(step, carry, batch(idx[0], None if mask is None else mask[0]))[1]

        def body(carry: Any, xs: tuple) -> tuple[Any, dict[str, jax.Array]]:
            i, m, a = xs
            if a is None:
                return step(carry, batch(i, m))
            return jax.lax.cond(a, lambda c: step(c, batch(i, m)), lambda c: (c, skipped(shape)), carry)

        return jax.lax.scan(body, carry, (idx, mask, active), unroll=unroll)

    return steps


def make_epoch(
    step: StepFn,
    num_examples: int,
    batch_size: int,
    *,
    remainder: Remainder = "keep",
    unroll: int = 1,
    sharding: Sharding | None = None,
    width: int | None = None,
) -> EpochFn:
    """Returns ``epoch(state, (x, y), order) -> (state, {"loss": [steps], ...})``.

    ``order`` is the epoch's permutation of the training set (``epoch_order(seed, epoch,
    N)``; ``jnp.arange(N)`` for no shuffling). Full-batch descent (B = N, "keep") ignores
    it and skips the gather: the mean gradient does not depend on the order of its terms.

    Data parallelism (``jbatch.core.parallel``): ``sharding`` splits each batch's rows over a
    mesh; ``width`` pads every batch with masked rows to a multiple of its device count.

    Examples:
      >>> import optax
      >>> from jbatch.core.loss import softmax_cross_entropy
      >>> from jbatch.workloads.model import make_model
      >>> from jbatch.core.step import init_train_state, make_train_step
      >>> state = init_train_state(make_model("linear", 4, 3), optax.sgd(0.1))
      >>> epoch = make_epoch(make_train_step(softmax_cross_entropy), 10, 4)
      >>> data = (jnp.ones((10, 4)), jnp.zeros(10, jnp.int32))
      >>> state, m = epoch(state, data, jnp.arange(10))  # pure: compile it with jax.jit
      >>> int(state.step), m["loss"].shape  # ceil(10 / 4) updates
      (3, (3,))
    """
    steps_per_epoch(num_examples, batch_size, remainder)  # validates the combination
    width = batch_size if width is None else width
    if width < batch_size:
        raise ValueError(f"width {width} is smaller than the batch size {batch_size}")
    whole = batch_size == num_examples and width == batch_size
    # static: one program; masks only where some rows are padding
    padded = width > batch_size or (remainder == "keep" and num_examples % batch_size != 0)
    run = make_steps(step, whole=whole, unroll=unroll, sharding=sharding)

    def epoch(state: TrainState, data: Data, order: jax.Array) -> tuple[TrainState, dict[str, jax.Array]]:
        if whole:
            return run(state, data, jnp.zeros((1, 1), jnp.int32), None, None)
        idx, mask = _padded_batches(order, batch_size, remainder, width)
        return run(state, data, idx, mask if padded else None, None)

    return epoch


def _padded_batches(order: jax.Array, batch_size: int, remainder: Remainder, width: int | None = None):
    idx, mask = epoch_batches(order, batch_size, remainder)
    if width is not None and width > batch_size:  # data parallel: pad every batch to a multiple of the devices
        idx = jnp.pad(idx, ((0, 0), (0, width - batch_size)))
        mask = jnp.pad(mask, ((0, 0), (0, width - batch_size)))
    return idx, mask


def make_partial_epoch(step: StepFn, num_examples: int, batch_size: int, remainder: Remainder = "keep") -> Callable:
    """Returns ``epoch(state, (x, y), order, n, start) -> (state, {"loss": [steps], ...})``:
    the Keras epoch of ``order`` at ``batch_size``, its batches ``start`` to ``n - 1`` applied
    (the others skipped: NaN losses). ``n`` and ``start`` are traced: one program for every
    part of an epoch, so an epoch cut into pieces (to evaluate in between) is the same epoch."""
    steps_per_epoch(num_examples, batch_size, remainder)
    padded = remainder == "keep" and num_examples % batch_size != 0
    run = make_steps(step)

    def epoch(state: TrainState, data: Data, order: jax.Array, n: jax.Array, start: jax.Array):
        idx, mask = epoch_batches(order, batch_size, remainder)
        k = jnp.arange(idx.shape[0])
        return run(state, data, idx, mask if padded else None, (k >= start) & (k < n))

    return epoch


def make_chunk(
    step: StepFn, *, whole: bool, unroll: int = 1, explosion_factor: float = EXPLOSION_FACTOR
) -> Callable[..., tuple[tuple[TrainState, Guard], dict[str, jax.Array]]]:
    """Returns ``chunk((state, guard), train, idx, mask, active) -> ((state, guard), out)``:
    ``k`` checked steps (``jbatch.core.guard``: the first explosion is recorded, a diverged
    replica's steps are skipped; the sweep sets it back to a finite state at the end of the
    segment), the unit a sweep compiles and vmaps over its replicas.

    ``idx``/``mask`` are ``[k, B]`` batches cut on the host; steps with ``active`` False are
    skipped, which lets chunks end exactly at epoch ends. ``active`` is shared by all
    replicas, so its ``lax.cond`` stays a branch under ``vmap``. ``whole`` (B = N) uses the
    split as it is. ``out`` holds the per-step losses and what the program itself counted:
    the real examples its steps used and the replica's update counter.
    """
    run = make_steps(make_checked_step(step, explosion_factor), whole=whole, unroll=unroll)

    def chunk(carry, train: Data, idx, mask, active):
        carry, metrics = run(carry, train, idx, mask, active)
        return carry, {
            "loss": metrics["loss"],
            "examples": jnp.sum(metrics["examples"]),
            "updates": carry[0].step,
            "diverged": carry[1].diverged,
        }

    return chunk


def make_evaluate(
    eval_step: Callable[[TrainState, Batch], dict[str, jax.Array]], batch_size: int = 2048
) -> Callable[..., dict[str, jax.Array]]:
    """Returns ``evaluate(state, (x, y)) -> {"loss", "accuracy"?}`` over a whole split.

    The split is cut into ``batch_size`` rows (the last batch padded and masked) and the
    sums are divided once, so the result is exact whatever the batch size.
    """

    eval_step = traced_once(eval_step)  # traced for its shapes and in the loop: once

    def evaluate(state: TrainState, data: Data) -> dict[str, jax.Array]:
        x, y = data
        n = x.shape[0]
        b = min(batch_size, n)
        idx, mask = epoch_batches(jnp.arange(n), b, "keep")

        def body(total, batch_idx):
            i, m = batch_idx
            sums = eval_step(state, Batch(x[i], y[i], m))
            return jax.tree.map(jnp.add, total, sums), None

        zero = jax.tree.map(jnp.zeros_like, jax.eval_shape(eval_step, state, Batch(x[:b], y[:b], mask[0])))
        total, _ = jax.lax.scan(body, zero, (idx, mask))
        out = {"loss": total["loss_sum"] / total["count"]}
        if "correct" in total:
            out["accuracy"] = total["correct"] / total["count"]
        return out

    return evaluate


def make_needed(evaluate: Callable[[TrainState, Data], dict[str, jax.Array]]) -> Callable[..., dict[str, jax.Array]]:
    """``needed(state, data, need)``: ``evaluate(state, data)`` when ``need``, NaN otherwise.

    A sweep evaluates the target's split at every fine point only for the replicas that
    still need it (not yet at the target, not diverged). Replicas that run one after another
    (``lax.map``, jbatch's CPU layout) then really skip the work; under ``vmap`` the branch
    becomes a select and every replica is evaluated anyway (accelerators, where it is cheap).
    """

    evaluate = traced_once(evaluate)  # traced for its shapes and in the branch: once

    def needed(state: TrainState, data: Data, need: jax.Array) -> dict[str, jax.Array]:
        def skip(s: TrainState) -> dict[str, jax.Array]:
            return jax.tree.map(lambda v: jnp.full(v.shape, jnp.nan, v.dtype), jax.eval_shape(evaluate, s, data))

        return jax.lax.cond(need, lambda s: evaluate(s, data), skip, state)

    return needed
