"""Replicas: K training states stacked along a leading axis, for one ``jax.vmap``-ed program.

Replicas differ in seed (initial weights and data order) and/or learning rate, which is an
array leaf of the optimizer state, so they share one compiled program. They must share the
model graph and the optax transformation object (both are static parts of the program).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx

from jbatch.core.batching import epoch_order
from jbatch.core.optim import set_hyperparameters
from jbatch.core.step import TrainState, init_train_state


def stack(trees: Sequence[object]) -> object:
    """Stacks equal-structured PyTrees leaf by leaf along a new leading axis."""
    return jax.tree.map(lambda *leaves: jnp.stack(leaves), *trees)


def stack_host(trees: Sequence[object]) -> object:
    """``stack`` for host copies (``jax.device_get``), in NumPy: no device operation to
    compile. Typed PRNG keys (a Dropout's ``nnx.Rngs``), which NumPy cannot hold, are
    stacked as their key data and wrapped again."""

    def one(*leaves):
        if jax.dtypes.issubdtype(leaves[0].dtype, jax.dtypes.prng_key):
            data = np.stack([np.asarray(jax.random.key_data(v)) for v in leaves])
            return jax.random.wrap_key_data(data, impl=jax.random.key_impl(leaves[0]))
        return np.stack(leaves)

    return jax.tree.map(one, *trees)


def unstack(tree: object, index: int) -> object:
    """Replica ``index`` of a stacked PyTree."""
    return jax.tree.map(lambda leaf: leaf[index], tree)


def replica_orders(seeds: Sequence[int], epoch: int, num_examples: int) -> np.ndarray:
    """Each replica's visiting order for ``epoch``, stacked ``[K, N]``: a replica's order
    depends on its seed alone, so replicas that differ only in learning rate see the same
    batches (a paired comparison)."""
    return np.stack([epoch_order(s, epoch, num_examples) for s in seeds])


def init_replicas(
    make_model: Callable[[int], nnx.Module],
    tx: optax.GradientTransformation,
    seeds: Sequence[int],
    learning_rates: Sequence[float | Mapping[str, float]],
    initial: dict[int, TrainState] | None = None,
) -> TrainState:
    """One replica per ``(seeds[i], learning_rates[i])`` pair, stacked along axis 0; an
    entry of ``learning_rates`` may also be a mapping of every injected hyperparameter's
    value for that replica (learning rate, momentum, ...).

    ``tx`` must come from ``optax.inject_hyperparams`` so each replica can hold its own values.
    ``initial``: the states already built, by seed, reused and filled in (a sweep builds each
    seed's model once for all its batch sizes: construction is eager, hence slow).

    Examples:
      >>> from jbatch.workloads.model import make_model
      >>> from jbatch.core.optim import make_optimizer, get_learning_rate
      >>> state = init_replicas(lambda s: make_model("linear", 3, 2, seed=s),
      ...                       make_optimizer("sgd", 0.1), [0, 1], [0.1, 0.5])
      >>> get_learning_rate(state.opt_state).tolist(), state.params["out"]["kernel"].shape
      ([0.10000000149011612, 0.5], (2, 3, 2))
    """
    if len(seeds) != len(learning_rates):
        raise ValueError(f"{len(seeds)} seeds but {len(learning_rates)} learning rates")
    states, first = [], {} if initial is None else initial  # one model per distinct seed
    for seed, lr in zip(seeds, learning_rates, strict=True):
        if seed not in first:
            first[seed] = init_train_state(make_model(seed), tx)
        s = first[seed]
        values = lr if isinstance(lr, Mapping) else {"learning_rate": lr}
        states.append(s.replace(opt_state=set_hyperparameters(s.opt_state, values)))
    return stack(states)
