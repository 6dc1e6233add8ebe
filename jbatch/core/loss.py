"""Losses as optax writes them, per example, and the masked ``(sum, count)`` jbatch divides once.

A loss is any function ``loss(outputs, targets) -> [B]`` (or ``[B, T, ...]``: one term per
token), as optax's own are (``optax.softmax_cross_entropy_with_integer_labels``,
``optax.l2_loss`` of a ``[B]`` output, ...). jbatch applies the batch's mask of real rows and
counts the terms (``summed``): a padded partial batch's mean loss, and its gradient, are then
those of the exact partial batch, and B = 1 needs no special case.
"""

from __future__ import annotations

import inspect
import math
import warnings
from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp
import optax

LossFn = Callable[[jax.Array, jax.Array], jax.Array]  # (outputs, targets) -> one loss term per example (or token)


class LossSum(NamedTuple):
    """A summed loss over the real (unmasked) examples, and how many terms there were."""

    total: jax.Array
    count: jax.Array

    def mean(self) -> jax.Array:
        """``total / count``; an all-masked batch has mean 0 and gradient 0, never NaN."""
        return self.total / jnp.maximum(self.count, 1)


def masked_sum(per_example: jax.Array, mask: jax.Array | None) -> LossSum:
    """Sums a per-row (``[B]``) or per-token (``[B, T, ...]``) loss over the real rows; the
    count is of the terms summed, so a sequence's mean is per token.

    Examples:
      >>> s = masked_sum(jnp.array([1.0, 2.0, 5.0]), jnp.array([True, True, False]))
      >>> float(s.total), float(s.count)
      (3.0, 2.0)
    """
    per_row = math.prod(per_example.shape[1:])
    if mask is None:
        return LossSum(jnp.sum(per_example), jnp.asarray(per_example.shape[0] * per_row, per_example.dtype))
    m = mask.astype(per_example.dtype).reshape(mask.shape + (1,) * (per_example.ndim - 1))
    return LossSum(jnp.sum(per_example * m), jnp.sum(m) * per_row)


def summed(loss_fn: LossFn) -> Callable[[jax.Array, jax.Array, jax.Array | None], LossSum]:
    """``loss_fn`` as ``(outputs, targets, mask) -> LossSum``: the per-example terms summed
    over the real rows (``masked_sum``). A loss that must give one term per example and gives
    a scalar (a mean already taken) is an error at trace time, naming the shapes.

    jbatch's losses before 0.2 took the mask themselves (a third argument named ``mask``) and
    returned a ``LossSum``: still accepted, with a ``DeprecationWarning``."""
    try:
        takes_mask = "mask" in inspect.signature(loss_fn).parameters
    except (TypeError, ValueError):
        takes_mask = False
    if takes_mask:
        warnings.warn(
            f"{getattr(loss_fn, '__qualname__', loss_fn)} takes a mask and returns a LossSum, jbatch's old "
            "loss signature; give a per-example loss (outputs, targets) -> [B] instead, as optax's are",
            DeprecationWarning,
            stacklevel=2,
        )
        return loss_fn

    def summed_loss(outputs: jax.Array, targets: jax.Array, mask: jax.Array | None = None) -> LossSum:
        per_example = jnp.asarray(loss_fn(outputs, targets))
        rows = outputs.shape[0] if hasattr(outputs, "shape") and outputs.ndim else None
        if per_example.ndim == 0 or per_example.shape[0] != rows:
            raise ValueError(
                f"the loss {getattr(loss_fn, '__qualname__', loss_fn)} returned shape "
                f"{tuple(per_example.shape)} for outputs of shape {tuple(outputs.shape)}: it must give one "
                "term per example ([B], or [B, T] per token), as optax's losses do; jbatch sums them "
                "over the real rows and divides once"
            )
        return masked_sum(per_example, mask)

    return summed_loss


def softmax_cross_entropy(logits: jax.Array, labels: jax.Array) -> jax.Array:
    """Softmax cross-entropy for integer labels, one term per example (or token): optax's.

    Examples:
      >>> [round(float(v), 4) for v in softmax_cross_entropy(jnp.zeros((2, 10)), jnp.arange(2))]  # log(10)
      [2.3026, 2.3026]
    """
    return optax.softmax_cross_entropy_with_integer_labels(logits, labels)


def mean_squared_error(predictions: jax.Array, targets: jax.Array) -> jax.Array:
    """Squared error per example, summed over output dimensions (for one output, the usual
    MSE's terms). ``predictions`` and ``targets`` must have one shape, except that one value
    per row (``[B]``) is taken against ``[B, 1]`` targets, as Keras's losses do; nothing is
    broadcast (``[B, 1]`` against ``[B]`` would be a ``B x B`` error).

    Examples:
      >>> mean_squared_error(jnp.array([[1.0], [2.0], [3.0]]), jnp.array([[1.0], [2.0], [4.0]])).tolist()
      [0.0, 0.0, 1.0]
    """
    if predictions.ndim == 1 and targets.shape == (*predictions.shape, 1):
        predictions = predictions[:, None]
    if predictions.shape != targets.shape:
        raise ValueError(
            f"mean_squared_error: predictions of shape {tuple(predictions.shape)} and targets of shape "
            f"{tuple(targets.shape)} differ: give the targets the model's output shape"
        )
    return jnp.sum(jnp.square(predictions - targets).reshape(predictions.shape[0], -1), -1)


def correct_count(logits: jax.Array, labels: jax.Array, mask: jax.Array | None = None) -> jax.Array:
    """Number of real examples whose arg-max class equals the label (as float32)."""
    hit = (jnp.argmax(logits, -1) == labels).astype(jnp.float32)
    if mask is not None:
        hit = hit * mask.astype(jnp.float32).reshape(mask.shape + (1,) * (hit.ndim - 1))
    return jnp.sum(hit)


# One explicit table: a loss by the name a config gives (``jbatch.config.LOSSES``); the task a data set
# declares picks one when none is named.
LOSSES: dict[str, LossFn] = {"cross_entropy": softmax_cross_entropy, "mse": mean_squared_error}
TASK_LOSS = {"classification": "cross_entropy", "regression": "mse"}
