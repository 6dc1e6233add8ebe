"""jbatch: what batch size to train with on this hardware, and what it costs in time and accuracy.

The training step, importable into your own loop (any Flax NNX model, any Optax
transformation, any per-example loss such as optax's)::

    from jbatch import Batch, init_train_state, make_train_step
    step = jax.jit(make_train_step(optax.softmax_cross_entropy_with_integer_labels))

and a whole batch-size sweep (or its advice, at a fraction of the cost) of your own model,
data and optimizer::

    doc = jbatch.sweep(model=make_my_model, data=(x_train, y_train, x_test, y_test), optimizer="momentum")

The rest lives in named submodules, the arrows pointing down (``tests/test_layers.py``):

* ``jbatch.core``: the training library (step, losses, epochs, batching, divergence guard,
  the compile engine, optimizers, replicas, data parallelism, modes, batch-size schedules);
* ``jbatch.workloads``: models, data sets, and a user's model, data and optimizer as one value;
* ``jbatch.sweeps``: the tool that runs experiments (the sweep, one batch size, advice, ...);
* ``jbatch.config`` and ``jbatch.results``: what a sweep trains, and the contract of every
  results document; with ``jbatch.analysis`` and ``jbatch.report`` (what results mean, their
  tables and plots), none of them imports jax, flax or optax.

The names below load on first use, so ``import jbatch.report`` does not start jax. Names
that moved in 0.2 still resolve, with a ``DeprecationWarning`` naming their new home.
"""

from __future__ import annotations

import importlib
import warnings
from typing import TYPE_CHECKING, Any

from jbatch import _compat

__version__ = "0.2.0"

_EXPORTS = {
    "jbatch.core.step": ("Batch", "TrainState", "init_train_state", "make_eval_step", "make_train_step"),
    "jbatch.core.epoch": ("make_epoch", "make_evaluate"),
    "jbatch.core.batching": ("epoch_order", "steps_per_epoch"),
    "jbatch.core.phases": ("Phase", "train_phases"),
    "jbatch.sweeps.api": ("advise", "sweep"),
    "jbatch.workloads.workload": ("Workload",),
    "jbatch.workloads.catalog": ("load_dataset",),
    "jbatch.errors": ("ConfigError",),
}
_WHERE = {name: module for module, names in _EXPORTS.items() for name in names}
__all__ = sorted(_WHERE)

if TYPE_CHECKING:  # what the names are, for type checkers and editors
    from jbatch.core.batching import epoch_order, steps_per_epoch  # noqa: F401
    from jbatch.core.epoch import make_epoch, make_evaluate  # noqa: F401
    from jbatch.core.phases import Phase, train_phases  # noqa: F401
    from jbatch.core.step import Batch, TrainState, init_train_state, make_eval_step, make_train_step  # noqa: F401
    from jbatch.errors import ConfigError  # noqa: F401
    from jbatch.sweeps.api import advise, sweep  # noqa: F401
    from jbatch.workloads.catalog import load_dataset  # noqa: F401
    from jbatch.workloads.workload import Workload  # noqa: F401


def __getattr__(name: str) -> Any:
    """Loads a public name's module on first use (PEP 562); a name of 0.1's flat surface
    resolves from its new home with a ``DeprecationWarning``."""
    if name in _WHERE:
        value = getattr(importlib.import_module(_WHERE[name]), name)
        globals()[name] = value  # the next access is a plain attribute
        return value
    if name in _compat.MOVED_NAMES:
        module, new = _compat.MOVED_NAMES[name]
        warnings.warn(
            f"jbatch.{name} is deprecated and will be removed in 0.3; use {module}.{new}",
            DeprecationWarning,
            stacklevel=2,
        )
        return getattr(importlib.import_module(module), new)
    raise AttributeError(f"module 'jbatch' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *__all__])
