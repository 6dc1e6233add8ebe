"""The training step: one pure function for full-batch, stochastic and mini-batch descent.

The regimes differ only in how batches are cut (``jbatch.core.batching``); the step sees a
``Batch`` of fixed shape with a mask and does not know which regime it serves. Nothing
here is jitted: the caller chooses ``jax.jit``, ``jax.vmap`` or ``jax.lax.scan``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax
from flax import nnx, struct

from jbatch.core.loss import LossFn, correct_count, summed
from jbatch.core.modes import apply, set_mode


class Batch(NamedTuple):
    """Inputs, targets and a mask of real rows (None: every row is real)."""

    x: jax.Array
    y: jax.Array
    mask: jax.Array | None = None


class TrainState(struct.PyTreeNode):
    """Everything that changes during training, as one PyTree.

    ``params`` are the model's ``nnx.Param`` variables, ``rest`` its other state (batch
    statistics, RNG keys and counters; empty for jbatch's models), which the forward pass
    may change (``jbatch.core.modes``). ``graphdef`` and ``tx`` are static: they are part of
    the compiled program, so replicas must share them.
    """

    step: jax.Array
    params: nnx.State
    rest: nnx.State
    opt_state: optax.OptState
    graphdef: nnx.GraphDef = struct.field(pytree_node=False)
    tx: optax.GradientTransformation = struct.field(pytree_node=False)

    def model(self) -> nnx.Module:
        """The model with this state's weights, as a stateful NNX module in eval mode (for
        inference: Dropout off, BatchNorm on its running averages)."""
        return set_mode(nnx.merge(self.graphdef, self.params, self.rest), "eval")


def init_train_state(model: nnx.Module, tx: optax.GradientTransformation) -> TrainState:
    """Splits any NNX model into graph and state (once) and initialises the optimizer.

    Examples:
      >>> import optax
      >>> from jbatch.workloads.model import make_model
      >>> state = init_train_state(make_model("linear", 3, 2), optax.sgd(0.1))
      >>> int(state.step), sorted(state.params["out"])
      (0, ['bias', 'kernel'])
    """
    graphdef, params, rest = nnx.split(model, nnx.Param, ...)
    return TrainState(
        step=jnp.zeros((), jnp.int32),
        params=params,
        rest=rest,
        opt_state=distinct(tx.init(params)),
        graphdef=graphdef,
        tx=tx,
    )


def distinct(tree: Any) -> Any:
    """``tree`` with every array that sits at more than one leaf copied, so that the state can
    be donated to a compiled step (XLA refuses to donate one buffer twice). An optimizer's
    state can hold one array twice: ``optax.inject_hyperparams`` around a factory that
    injects its own hyperparameters keeps the learning rate it was given at both levels.

    Examples:
      >>> lr = jnp.asarray(0.1)
      >>> a, b = distinct({"outer": lr, "inner": lr}).values()
      >>> a is lr, b is lr, round(float(b), 6)
      (True, False, 0.1)
    """
    seen: set[int] = set()

    def once(leaf: Any) -> Any:
        if not isinstance(leaf, jax.Array) or isinstance(leaf, jax.core.Tracer):
            return leaf  # traced values own no buffer yet
        if id(leaf) in seen:
            return jnp.array(leaf, copy=True)
        seen.add(id(leaf))
        return leaf

    return jax.tree.map(once, tree)


StepFn = Callable[[TrainState, Batch], tuple[TrainState, dict[str, jax.Array]]]


def skipped(metrics: dict[str, Any]) -> dict[str, jax.Array]:
    """The metrics of a step that did not run, shaped as ``metrics`` (a ``jax.eval_shape``):
    a NaN loss, zeros for the rest (so counts sum to what really ran)."""
    return {
        k: jnp.full(v.shape, jnp.nan, v.dtype) if k == "loss" else jnp.zeros(v.shape, v.dtype)
        for k, v in metrics.items()
    }


def make_train_step(loss_fn: LossFn, microbatch: int | None = None) -> StepFn:
    """Returns the pure update ``step(state, batch) -> (state, {"loss", "examples"})``.

    ``loss_fn(outputs, targets)`` gives one loss term per example (or token), as optax's
    losses do (``optax.softmax_cross_entropy_with_integer_labels``). The model runs in train
    mode (``jbatch.core.modes``: Dropout on, BatchNorm on the statistics of the batch's real
    rows). The terms are summed over the batch's real rows and counted
    (``jbatch.core.loss.summed``), and divided once: a padded last batch and B = 1 both get
    the exact mean loss and gradient
    (and a BatchNorm model the exact update, padding kept out of its statistics). ``examples`` is that count,
    the number of real examples the update used, as the compiled program saw it. Works with
    any NNX model and any optax transformation held by ``state``.

    ``microbatch=M``: a batch of B rows is processed as ``ceil(B / M)`` masked micro-batches
    of M rows in a ``lax.scan`` (the last one padded), whose summed losses, counts and
    gradients of the summed loss add up to the one-shot batch's: the same update (to float
    rounding) in the memory of M rows. A BatchNorm model normalises each micro-batch with
    its own statistics and updates its running averages once per micro-batch, as gradient
    accumulation does in any framework: not the one-shot batch's update. A micro-batch of
    padding only (the tail of a partial last batch) is skipped.

    Examples:
      >>> import optax
      >>> from jbatch.workloads.model import make_model
      >>> state = init_train_state(make_model("linear", 4, 3), optax.sgd(0.1))
      >>> step = make_train_step(optax.softmax_cross_entropy_with_integer_labels)  # pure: jit, vmap or scan it
      >>> state, m = step(state, Batch(jnp.ones((8, 4)), jnp.zeros(8, jnp.int32)))
      >>> int(state.step), m["loss"].shape
      (1, ())
    """
    if microbatch is not None and microbatch < 1:
        raise ValueError(f"microbatch must be at least 1, got {microbatch}")
    total = summed(loss_fn)

    def summed_grad(state: TrainState, params: nnx.State, rest: nnx.State, batch: Batch):
        def objective(p: nnx.State):
            out, new_rest = apply(state.graphdef, p, rest, batch.x, "train", batch.mask)
            s = total(out, batch.y, batch.mask)
            return s.total, (new_rest, s.count)

        return jax.value_and_grad(objective, has_aux=True)(params)

    def accumulate(state: TrainState, batch: Batch):
        rows = batch.x.shape[0]
        k = -(-rows // microbatch)
        pad = k * microbatch - rows
        mask = jnp.ones(rows, bool) if batch.mask is None else batch.mask
        pad_rows = lambda a: jnp.pad(a, [(0, pad)] + [(0, 0)] * (a.ndim - 1))  # noqa: E731
        split = lambda a: pad_rows(a).reshape(k, microbatch, *a.shape[1:])  # noqa: E731
        parts = Batch(split(batch.x), split(batch.y), split(mask))

        def body(carry, part):
            def add(carry):
                total, count, grads, rest = carry
                (t, (rest, c)), g = summed_grad(state, state.params, rest, Batch(*part))
                return total + t, count + c, jax.tree.map(jnp.add, grads, g), rest

            # padding only: nothing to add, and no statistics of zero rows (NaN) for a BatchNorm
            return jax.lax.cond(jnp.any(part[2]), add, lambda c: c, carry), None

        zero = jax.tree.map(jnp.zeros_like, state.params)
        init = (jnp.zeros((), jnp.float32), jnp.zeros((), jnp.float32), zero, state.rest)
        (total, count, grads, rest), _ = jax.lax.scan(body, init, parts)
        n = jnp.maximum(count, 1)
        return total / n, count, jax.tree.map(lambda g: g / n, grads), rest

    def step(state: TrainState, batch: Batch) -> tuple[TrainState, dict[str, jax.Array]]:
        if microbatch is not None and batch.x.shape[0] > microbatch:
            loss, count, grads, rest = accumulate(state, batch)
        else:

            def objective(params: nnx.State) -> tuple[jax.Array, tuple[nnx.State, jax.Array]]:
                out, rest = apply(state.graphdef, params, state.rest, batch.x, "train", batch.mask)
                s = total(out, batch.y, batch.mask)
                return s.mean(), (rest, s.count)

            (loss, (rest, count)), grads = jax.value_and_grad(objective, has_aux=True)(state.params)
        updates, opt_state = state.tx.update(grads, state.opt_state, state.params)
        params = optax.apply_updates(state.params, updates)
        new = state.replace(step=state.step + 1, params=params, rest=rest, opt_state=opt_state)
        return new, {"loss": loss, "examples": count}

    return step


def make_eval_step(loss_fn: LossFn, classification: bool) -> Callable[[TrainState, Batch], dict[str, Any]]:
    """Returns ``eval_step(state, batch) -> sums``: summed loss, real-row count, and (for
    classification) the number of correct predictions, of the model in eval mode (Dropout
    off, BatchNorm on its running averages: ``jbatch.core.modes``), so sums add across batches
    exactly and an evaluation does not depend on how the split is cut."""
    total = summed(loss_fn)

    def eval_step(state: TrainState, batch: Batch) -> dict[str, jax.Array]:
        out, _ = apply(state.graphdef, state.params, state.rest, batch.x, "eval")
        s = total(out, batch.y, batch.mask)
        sums = {"loss_sum": s.total, "count": s.count}
        if classification:
            sums["correct"] = correct_count(out, batch.y, batch.mask)
        return sums

    return eval_step
