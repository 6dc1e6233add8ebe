"""A whole epoch as one pure function: ``lax.scan`` of the step over the epoch's batches.

The data set is already on the device; the epoch receives its visiting order (one small
transfer per epoch, see ``batching.epoch_order``), gathers each batch inside the scan and
returns the per-step losses as an array, so one compiled call trains one epoch with no
Python and no host synchronisation per step. Evaluation is the
same idea: a scan over fixed-size, masked batches that sums loss and correct counts.
"""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp
from jax.sharding import Sharding

from jbatch.core.batching import Remainder, epoch_batches, steps_per_epoch
from jbatch.core.guard import EXPLOSION_FACTOR, Guard, make_checked_step
from jbatch.core.step import Batch, StepFn, TrainState

Data = tuple[jax.Array, jax.Array]  # (x, y), whole split, on the device
EpochFn = Callable[[TrainState, Data, jax.Array], tuple[TrainState, dict[str, jax.Array]]]


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
    """Returns ``epoch(state, (x, y), order) -> (state, {"loss": [steps]})``.

    ``order`` is the epoch's permutation of the training set (``epoch_order(seed, epoch,
    N)``; ``jnp.arange(N)`` for no shuffling). Full-batch descent (B = N, "keep") ignores
    it and skips the gather: the mean gradient does not depend on the order of its terms.

    Data parallelism (``jbatch.core.parallel``): ``sharding`` splits each batch's rows over a
    mesh; ``width`` pads every batch with masked rows to a multiple of its device count.

    Example:
      >>> import optax
      >>> from jbatch.core.loss import softmax_cross_entropy
      >>> from jbatch.workloads.model import make_model
      >>> from jbatch.core.step import init_train_state, make_train_step
      >>> state = init_train_state(make_model("linear", 4, 3), optax.sgd(0.1))
      >>> epoch = make_epoch(make_train_step(softmax_cross_entropy), 10, 4)
      >>> data = (jnp.ones((10, 4)), jnp.zeros(10, jnp.int32))
      >>> state, m = jax.jit(epoch)(state, data, jnp.arange(10))
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

    def constrain(batch: Batch) -> Batch:
        return batch if sharding is None else jax.lax.with_sharding_constraint(batch, sharding)

    def epoch(state: TrainState, data: Data, order: jax.Array) -> tuple[TrainState, dict[str, jax.Array]]:
        x, y = data
        if whole:
            state, metrics = step(state, constrain(Batch(x, y)))
            return state, jax.tree.map(lambda m: m[None], metrics)
        idx, mask = epoch_batches(order, batch_size, remainder)
        if width > batch_size:  # data parallel: pad every batch to a multiple of the devices
            idx = jnp.pad(idx, ((0, 0), (0, width - batch_size)))
            mask = jnp.pad(mask, ((0, 0), (0, width - batch_size)))

        def body(state: TrainState, batch_idx: tuple[jax.Array, jax.Array]):
            i, m = batch_idx
            return step(state, constrain(Batch(x[i], y[i], m if padded else None)))

        return jax.lax.scan(body, state, (idx, mask), unroll=unroll)

    return epoch


def make_evaluate(
    eval_step: Callable[[TrainState, Batch], dict[str, jax.Array]], batch_size: int = 2048
) -> Callable[..., dict[str, jax.Array]]:
    """Returns ``evaluate(state, (x, y)) -> {"loss", "accuracy"?}`` over a whole split.

    The split is cut into ``batch_size`` rows (the last batch padded and masked) and the
    sums are divided once, so the result is exact whatever the batch size.
    """

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

    def needed(state: TrainState, data: Data, need: jax.Array) -> dict[str, jax.Array]:
        def skip(s: TrainState) -> dict[str, jax.Array]:
            return jax.tree.map(lambda v: jnp.full(v.shape, jnp.nan, v.dtype), jax.eval_shape(evaluate, s, data))

        return jax.lax.cond(need, lambda s: evaluate(s, data), skip, state)

    return needed


def make_train_chunk(
    step: StepFn, *, whole: bool, unroll: int = 1, explosion_factor: float = EXPLOSION_FACTOR
) -> Callable[..., tuple[tuple[TrainState, Guard], dict[str, jax.Array]]]:
    """Returns ``chunk((state, guard), train, idx, mask, active) -> ((state, guard), out)``:
    ``k`` checked steps (``jbatch.core.guard``: the first explosion is recorded; the sweep sets
    the replica back to a finite state at the end of the segment), the unit a sweep
    compiles and vmaps over its replicas.

    ``idx``/``mask`` are ``[k, B]`` batches cut on the host; steps with ``active`` False are
    skipped, which lets chunks end exactly at epoch ends. ``active`` is shared by all
    replicas, so its ``lax.cond`` stays a branch under ``vmap``. ``whole`` (B = N) uses the
    split as it is. ``out`` holds the per-step losses and what the program itself counted:
    the real examples its steps used and the replica's update counter.
    """
    checked = make_checked_step(step, explosion_factor)

    def chunk(carry, train: Data, idx, mask, active):
        metrics_shape = jax.eval_shape(step, carry[0], _example_batch(train, idx, mask, whole))[1]

        def body(c, xs):
            i, m, a = xs

            def update(c):
                x, y = train
                return checked(c, Batch(x, y) if whole else Batch(x[i], y[i], m))

            def skip(c):
                return c, jax.tree.map(lambda v: jnp.zeros(v.shape, v.dtype), metrics_shape) | {
                    "loss": jnp.full(metrics_shape["loss"].shape, jnp.nan, metrics_shape["loss"].dtype)
                }

            def live(c):  # a diverged (or parked) replica skips its steps: a real branch when replicas
                return jax.lax.cond(c[1].diverged, skip, update, c)  # run one by one, a select under vmap

            return jax.lax.cond(a, live, skip, c)

        carry, metrics = jax.lax.scan(body, carry, (idx, mask, active), unroll=unroll)
        return carry, {"loss": metrics["loss"], "examples": jnp.sum(metrics["examples"]), "updates": carry[0].step,
                       "diverged": carry[1].diverged}  # fmt: skip

    return chunk


def _example_batch(train: Data, idx: jax.Array, mask: jax.Array, whole: bool) -> Batch:
    x, y = train
    return Batch(x, y) if whole else Batch(x[idx[0]], y[idx[0]], mask[0])
