"""jbatch: what batch size to train with on this hardware, and what it costs in time and accuracy.

The training core, importable into your own loop::

    from jbatch import Batch, init_train_state, make_train_step, softmax_cross_entropy

and a whole batch-size sweep of your own model, data and optimizer::

    doc = jbatch.sweep(model=make_my_model, data=(x_train, y_train, x_test, y_test), optimizer="momentum")

Four products, one package each, the arrows pointing down (``tests/test_layers.py``):

* ``jbatch.core``: the training library a user imports (step, losses, epochs, batching,
  divergence guard, the compile engine, optimizers, replicas, data parallelism, modes);
* ``jbatch.workloads``: models, data sets, and a user's model, data and optimizer as one value;
* ``jbatch.sweeps``: the tool that runs experiments (the sweep and ``jbatch.sweep``, one
  batch size, the evaluation cadence, noise probes, timing, ``jbatch train``, scaling);
* ``jbatch.analysis`` and ``jbatch.report``: what the JSON results mean, and their tables,
  claims, comparisons and plots; neither imports jax, flax or optax.

The names below load on first use, so ``import jbatch.report`` does not start jax.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

_EXPORTS = {
    "jbatch.core.batching": ("epoch_batches", "epoch_order", "last_batch_size", "resolve_batch_size",
                             "steps_per_epoch"),
    "jbatch.core.engine": ("CompileCounter", "compile_program", "timed_call"),
    "jbatch.core.epoch": ("make_epoch", "make_evaluate"),
    "jbatch.core.loss": ("LossSum", "mean_squared_error", "softmax_cross_entropy"),
    "jbatch.core.phases": ("Phase", "parse_phases", "phase_learning_rates", "train_phases"),
    "jbatch.core.optim": ("OPTIMIZERS", "get_learning_rate", "make_optimizer", "set_hyperparameters",
                          "set_learning_rate"),
    "jbatch.core.replica": ("init_replicas", "replica_orders", "stack", "unstack"),
    "jbatch.core.step": ("Batch", "TrainState", "init_train_state", "make_eval_step", "make_train_step"),
    "jbatch.errors": ("ConfigError",),
    "jbatch.sweeps.api": ("advise", "sweep"),
    "jbatch.sweeps.train": ("TrainConfig", "TrainResult", "train_and_evaluate"),
    "jbatch.workloads.catalog": ("load_dataset",),
    "jbatch.workloads.data": ("load_digits",),
    "jbatch.workloads.model": ("MODELS", "make_model"),
    "jbatch.workloads.workload": ("Workload",),
}  # fmt: skip
_WHERE = {name: module for module, names in _EXPORTS.items() for name in names}
__all__ = sorted(_WHERE)

if TYPE_CHECKING:  # what the names are, for type checkers and editors
    from jbatch.core.batching import epoch_batches, epoch_order, last_batch_size, resolve_batch_size, steps_per_epoch  # noqa: F401
    from jbatch.core.engine import CompileCounter, compile_program, timed_call  # noqa: F401
    from jbatch.core.epoch import make_epoch, make_evaluate  # noqa: F401
    from jbatch.core.loss import LossSum, mean_squared_error, softmax_cross_entropy  # noqa: F401
    from jbatch.core.optim import OPTIMIZERS, get_learning_rate, make_optimizer, set_hyperparameters, set_learning_rate  # noqa: F401
    from jbatch.core.phases import Phase, parse_phases, phase_learning_rates, train_phases  # noqa: F401
    from jbatch.core.replica import init_replicas, replica_orders, stack, unstack  # noqa: F401
    from jbatch.core.step import Batch, TrainState, init_train_state, make_eval_step, make_train_step  # noqa: F401
    from jbatch.errors import ConfigError  # noqa: F401
    from jbatch.sweeps.api import advise, sweep  # noqa: F401
    from jbatch.sweeps.train import TrainConfig, TrainResult, train_and_evaluate  # noqa: F401
    from jbatch.workloads.catalog import load_dataset  # noqa: F401
    from jbatch.workloads.data import load_digits  # noqa: F401
    from jbatch.workloads.model import MODELS, make_model  # noqa: F401
    from jbatch.workloads.workload import Workload  # noqa: F401




def __getattr__(name: str) -> Any:
    """Loads a public name's module on first use (PEP 562)."""
    if name not in _WHERE:
        raise AttributeError(f"module 'jbatch' has no attribute {name!r}")
    value = getattr(importlib.import_module(_WHERE[name]), name)
    globals()[name] = value  # the next access is a plain attribute
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *__all__])
