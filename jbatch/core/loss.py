"""Masked losses that return ``(sum, count)``, so padded batches and B=1 give exact means.

Dividing once, at the end, is what makes a padded partial batch's mean loss (and its
gradient) identical to that of the exact partial batch.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp
import optax

from jbatch.errors import ConfigError


class LossSum(NamedTuple):
    """A summed loss over the real (unmasked) examples, and how many there were."""

    total: jax.Array
    count: jax.Array

    def mean(self) -> jax.Array:
        """``total / count``; an all-masked batch has mean 0 and gradient 0, never NaN."""
        return self.total / jnp.maximum(self.count, 1)


def _masked_sum(per_example: jax.Array, mask: jax.Array | None) -> LossSum:
    """Sums a per-row (``[B]``) or per-token (``[B, T, ...]``) loss over the real rows; the
    count is of the terms summed, so a sequence's mean is per token."""
    per_row = math.prod(per_example.shape[1:])
    if mask is None:
        return LossSum(jnp.sum(per_example), jnp.asarray(per_example.shape[0] * per_row, per_example.dtype))
    m = mask.astype(per_example.dtype).reshape(mask.shape + (1,) * (per_example.ndim - 1))
    return LossSum(jnp.sum(per_example * m), jnp.sum(m) * per_row)


def softmax_cross_entropy(logits: jax.Array, labels: jax.Array, mask: jax.Array | None = None) -> LossSum:
    """Summed softmax cross-entropy for integer labels; masked rows count for nothing.

    Example:
      >>> s = softmax_cross_entropy(jnp.zeros((4, 10)), jnp.arange(4))
      >>> round(float(s.mean()), 4)  # log(10)
      2.3026
    """
    per_example = optax.softmax_cross_entropy_with_integer_labels(logits, labels)
    return _masked_sum(per_example, mask)


def mean_squared_error(predictions: jax.Array, targets: jax.Array, mask: jax.Array | None = None) -> LossSum:
    """Summed squared error per example (summed over output dims), masked.

    The mean is ``mean_i |f(x_i) - y_i|^2``: for one output this is the usual MSE.
    """
    per_example = jnp.sum(jnp.square(predictions - targets).reshape(predictions.shape[0], -1), -1)
    return _masked_sum(per_example, mask)


def correct_count(logits: jax.Array, labels: jax.Array, mask: jax.Array | None = None) -> jax.Array:
    """Number of real examples whose arg-max class equals the label (as float32)."""
    hit = (jnp.argmax(logits, -1) == labels).astype(jnp.float32)
    if mask is not None:
        hit = hit * mask.astype(jnp.float32).reshape(mask.shape + (1,) * (hit.ndim - 1))
    return jnp.sum(hit)


LossFn = Callable[[jax.Array, jax.Array, jax.Array | None], LossSum]

# One explicit table: the task a data set declares picks its loss.
LOSSES: dict[str, LossFn] = {
    "classification": softmax_cross_entropy,
    "regression": mean_squared_error,
}


def loss_for_task(task: str) -> LossFn:
    """The loss a task trains with (``"classification"`` or ``"regression"``)."""
    try:
        return LOSSES[task]
    except KeyError:
        raise ConfigError(f"unknown task {task!r}; known: {', '.join(LOSSES)}") from None
