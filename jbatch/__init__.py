"""jbatch: what batch size to train with on this hardware, and what it costs in time and accuracy.

The training core, importable into your own loop::

    from jbatch import Batch, init_train_state, make_train_step, softmax_cross_entropy

and a whole batch-size sweep of your own model, data and optimizer::

    doc = jbatch.sweep(model=make_my_model, data=(x_train, y_train, x_test, y_test), optimizer="momentum")
"""

from jbatch.api import sweep
from jbatch.batching import epoch_batches, epoch_order, last_batch_size, resolve_batch_size, steps_per_epoch
from jbatch.engine import CompileCounter, compile_program, timed_call
from jbatch.epoch import make_epoch, make_evaluate
from jbatch.errors import ConfigError
from jbatch.loss import LossSum, mean_squared_error, softmax_cross_entropy
from jbatch.model import MODELS, make_model
from jbatch.optim import OPTIMIZERS, get_learning_rate, make_optimizer, set_hyperparameters, set_learning_rate
from jbatch.replica import init_replicas, replica_orders, stack, unstack
from jbatch.step import Batch, TrainState, init_train_state, make_eval_step, make_train_step
from jbatch.train import TrainConfig, TrainResult, train_and_evaluate
from jbatch.workload import Workload

__all__ = [
    "MODELS",
    "OPTIMIZERS",
    "Batch",
    "CompileCounter",
    "ConfigError",
    "LossSum",
    "TrainConfig",
    "TrainResult",
    "TrainState",
    "Workload",
    "compile_program",
    "epoch_batches",
    "epoch_order",
    "get_learning_rate",
    "init_replicas",
    "init_train_state",
    "last_batch_size",
    "make_epoch",
    "make_eval_step",
    "make_evaluate",
    "make_model",
    "make_optimizer",
    "make_train_step",
    "mean_squared_error",
    "replica_orders",
    "resolve_batch_size",
    "set_hyperparameters",
    "set_learning_rate",
    "softmax_cross_entropy",
    "stack",
    "steps_per_epoch",
    "sweep",
    "timed_call",
    "train_and_evaluate",
    "unstack",
]
