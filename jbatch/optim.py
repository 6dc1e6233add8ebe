"""Optimizers with the learning rate as an array leaf of their state.

``optax.inject_hyperparams`` stores the learning rate in the optimizer state, so a new
learning rate is new data, not a new program: no recompilation, and ``jax.vmap`` can give
each replica its own rate (optax issue 577 is what happens otherwise).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax

from jbatch.errors import ConfigError

# One explicit table; the CLI's --optimizer choices come from here.
OPTIMIZERS: dict[str, Callable[..., optax.GradientTransformation]] = {
    "sgd": optax.sgd,
    "momentum": functools.partial(optax.sgd, momentum=0.9),
    "nesterov": functools.partial(optax.sgd, momentum=0.9, nesterov=True),
    "adam": optax.adam,
}


def check_learning_rate(learning_rate: float) -> float:
    """Refuses non-positive and non-finite learning rates with a clear message."""
    try:
        lr = float(learning_rate)
    except (TypeError, ValueError):
        raise ConfigError(f"learning rate must be a number, got {learning_rate!r}") from None
    if not lr > 0 or lr == float("inf"):
        raise ConfigError(f"learning rate must be a positive finite number, got {learning_rate!r}")
    return lr


def make_optimizer(name: str, learning_rate: float) -> optax.GradientTransformation:
    """A built-in optimizer with its learning rate injected as state.

    Example:
      >>> tx = make_optimizer("momentum", 0.1)
      >>> round(float(get_learning_rate(tx.init({"w": jnp.zeros(3)}))), 6)
      0.1
    """
    if name not in OPTIMIZERS:
        raise ConfigError(f"unknown optimizer {name!r}; known: {', '.join(OPTIMIZERS)}")
    factory = OPTIMIZERS[name]

    # Inject the learning rate only: the other hyperparameters stay Python constants of the
    # program (as float32 leaves, adam's b1 ** count would break strict dtype promotion).
    def with_rate(learning_rate: float) -> optax.GradientTransformation:
        return factory(learning_rate=learning_rate)

    return optax.inject_hyperparams(with_rate)(learning_rate=check_learning_rate(learning_rate))


def _hyperparams(opt_state: Any) -> dict[str, jax.Array]:
    # inject_hyperparams may sit inside a chain; find the first state that carries them.
    for s in jax.tree.leaves(opt_state, is_leaf=lambda s: hasattr(s, "hyperparams")):
        if hasattr(s, "hyperparams") and "learning_rate" in s.hyperparams:
            return s.hyperparams
    raise ConfigError(
        "the optimizer state has no injected learning rate: wrap the optimizer with"
        " optax.inject_hyperparams(...) to change or vmap its learning rate"
    )


def get_learning_rate(opt_state: Any) -> jax.Array:
    """The learning rate stored in an ``inject_hyperparams`` optimizer state."""
    return _hyperparams(opt_state)["learning_rate"]


def set_learning_rate(opt_state: Any, learning_rate: float | jax.Array) -> Any:
    """A copy of ``opt_state`` with a new learning rate; same shapes, so nothing recompiles."""
    old = get_learning_rate(opt_state)
    if isinstance(learning_rate, jax.Array):  # possibly traced: stay in jnp
        new = jnp.asarray(learning_rate, dtype=old.dtype).reshape(old.shape)
    else:  # host values: a plain transfer, so not even an eager op gets compiled
        new = jax.device_put(np.asarray(learning_rate, dtype=old.dtype).reshape(old.shape))
    return jax.tree.map(lambda leaf: new if leaf is old else leaf, opt_state)
