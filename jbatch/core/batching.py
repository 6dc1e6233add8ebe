"""How a training set is cut into batches: Keras-exact epoch arithmetic and shuffled, padded batches.

Claims C1, C6 and C11 live here. An epoch is ``steps_per_epoch(N, B)`` updates; with
``remainder="keep"`` (Keras' behaviour) the last batch is partial. So that a whole epoch
runs in one compiled shape, the partial batch is padded to ``B`` rows and a mask marks
the real ones; losses are ``(sum, count)`` so the masked mean is the exact partial mean.
"""

from __future__ import annotations

import math
import operator
from typing import Literal

import jax
import jax.numpy as jnp
import numpy as np

from jbatch.errors import ConfigError

Remainder = Literal["keep", "drop"]
BatchSize = int | str | None  # an int, or None / "full" for full-batch descent

from jbatch.config import REMAINDERS  # noqa: E402  one home of the choice lists


def resolve_batch_size(batch_size: BatchSize, num_examples: int) -> int:
    """Turns a user's batch size into a number of examples per update.

    ``None`` and ``"full"`` mean full-batch gradient descent (B = N); 1 means stochastic
    gradient descent. A numeric string (as typed on a command line) is accepted.

    Examples:
      >>> resolve_batch_size("full", 1437), resolve_batch_size("32", 1437)
      (1437, 32)

    Raises:
      ConfigError: for 0, negative, non-integer sizes, or a size larger than the data set.
    """
    if num_examples < 1:
        raise ConfigError(f"the data set is empty (num_examples={num_examples})")
    if batch_size is None or batch_size == "full":
        return num_examples
    if isinstance(batch_size, str):
        try:
            batch_size = int(batch_size)
        except ValueError:
            raise ConfigError(f"batch size must be a positive integer or 'full', got {batch_size!r}") from None
    if not isinstance(batch_size, int) or isinstance(batch_size, bool):
        try:  # accepts numpy integers, refuses 3.5, True and friends
            if isinstance(batch_size, bool):
                raise TypeError
            batch_size = operator.index(batch_size)
        except TypeError:
            raise ConfigError(f"batch size must be a positive integer or 'full', got {batch_size!r}") from None
    if batch_size < 1:
        raise ConfigError(f"batch size must be at least 1, got {batch_size}")
    if batch_size > num_examples:
        raise ConfigError(
            f"batch size {batch_size} is larger than the {num_examples} training examples;"
            " use 'full' for full-batch descent"
        )
    return batch_size


def steps_per_epoch(num_examples: int, batch_size: BatchSize, remainder: Remainder = "keep") -> int:
    """Iterations (updates) in one epoch, as Keras counts them (claim C6).

    Examples:
      >>> steps_per_epoch(2000, 500), steps_per_epoch(1797, 500), steps_per_epoch(1797, 500, "drop")
      (4, 4, 3)
    """
    b = resolve_batch_size(batch_size, num_examples)
    if remainder == "keep":
        return math.ceil(num_examples / b)
    if remainder == "drop":
        return num_examples // b
    raise ConfigError(f"remainder must be one of {REMAINDERS}, got {remainder!r}")


def last_batch_size(num_examples: int, batch_size: BatchSize, remainder: Remainder = "keep") -> int:
    """Number of real examples in the epoch's last batch (297 for N=1797, B=500)."""
    b = resolve_batch_size(batch_size, num_examples)
    steps = steps_per_epoch(num_examples, b, remainder)
    return num_examples - (steps - 1) * b if remainder == "keep" else b


def epoch_order(seed: int, epoch: int, num_examples: int) -> np.ndarray:
    """The order in which epoch ``epoch`` visits the training set: a permutation, int32.

    Made on the host, once per epoch, from the explicit key ``(seed, epoch)`` (NumPy's
    ``SeedSequence`` with ``epoch`` as spawn key, the counterpart of ``jax.random.fold_in``):
    same key, same order. Measured on this 2-core CPU for N = 16,384 it costs 0.5 ms with
    the transfer, against 12 ms for ``jax.random.permutation`` on the device, whose sort
    would sit inside every timed epoch. It is one transfer per epoch, never one per step.

    Examples:
      >>> epoch_order(0, 3, 6).tolist() == epoch_order(0, 3, 6).tolist()
      True
      >>> sorted(epoch_order(0, 3, 6).tolist())
      [0, 1, 2, 3, 4, 5]
    """
    seq = np.random.SeedSequence(entropy=seed, spawn_key=(epoch,))
    return np.random.default_rng(seq).permutation(num_examples).astype(np.int32)


def epoch_batches(
    order: jax.Array | np.ndarray, batch_size: int, remainder: Remainder = "keep"
) -> tuple[jax.Array, jax.Array] | tuple[np.ndarray, np.ndarray]:
    """Indices and mask of every batch of one epoch, shape ``[steps, batch_size]`` each.

    ``order`` is the epoch's permutation of ``range(N)`` (``epoch_order``). Padding rows
    repeat index 0 and have mask False; they never reach the loss. Traceable (the compiled
    epoch calls it, so batches are cut on the device); a NumPy ``order`` gives NumPy arrays,
    for a host that cuts batches itself (the sweep does).

    Examples:
      >>> idx, mask = epoch_batches(np.arange(5), 2)
      >>> idx.tolist(), mask.tolist()
      ([[0, 1], [2, 3], [4, 0]], [[True, True], [True, True], [True, False]])
    """
    xp = np if isinstance(order, np.ndarray) else jnp
    num_examples = order.shape[0]
    steps = steps_per_epoch(num_examples, batch_size, remainder)
    order = xp.asarray(order, xp.int32)
    padded = steps * batch_size
    if padded <= num_examples:  # exact fit, or "drop"
        idx = order[:padded]
        mask = xp.ones(padded, dtype=bool)
    else:
        pad = padded - num_examples
        idx = xp.concatenate([order, xp.zeros(pad, xp.int32)])
        mask = xp.arange(padded) < num_examples
    return idx.reshape(steps, batch_size), mask.reshape(steps, batch_size)
