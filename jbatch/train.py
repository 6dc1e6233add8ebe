"""One training run from a config: ``train_and_evaluate`` (what ``jbatch train`` calls).

Builds the data, model, optimizer and the two compiled programs (epoch and evaluation),
then trains epoch by epoch, timing each epoch apart from its evaluation.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable

import jax

from jbatch.batching import REMAINDERS, BatchSize, epoch_order, resolve_batch_size, steps_per_epoch
from jbatch.data import Dataset, load_dataset
from jbatch.engine import compile_program, fast_unroll, timed_call
from jbatch.epoch import make_epoch, make_evaluate
from jbatch.errors import ConfigError
from jbatch.loss import loss_for_task
from jbatch.model import make_model
from jbatch.optim import make_optimizer
from jbatch.parallel import batch_sharding, data_mesh, padded_width, place
from jbatch.step import TrainState, init_train_state, make_eval_step, make_train_step


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """A single training run. ``batch_size`` None or "full" is full-batch descent."""

    dataset: str = "digits"
    model: str = "mlp"
    batch_size: BatchSize = 32
    epochs: int = 20
    learning_rate: float = 0.1
    optimizer: str = "sgd"
    seed: int = 0
    remainder: str = "keep"
    widths: tuple[int, ...] = (256, 256)
    unroll: int | None = None  # None: engine.fast_unroll(batch_size)
    devices: int = 1  # > 1: data parallel over this many local devices (jbatch.parallel)


@dataclasses.dataclass(frozen=True)
class EpochResult:
    """What one epoch did: its updates, its losses and accuracies, and its time."""

    epoch: int
    iterations: int
    train_loss: float
    test_loss: float
    train_accuracy: float | None
    test_accuracy: float | None
    seconds: float
    step_losses: list[float]


@dataclasses.dataclass(frozen=True)
class TrainResult:
    """A finished run: per-epoch results, compile times and the final state."""

    config: TrainConfig
    batch_size: int
    steps_per_epoch: int
    num_train: int
    epochs: list[EpochResult]
    compile_seconds: dict[str, float]
    state: TrainState


def check_config(config: TrainConfig, num_examples: int) -> int:
    """Validates what the data set alone cannot; returns the resolved batch size."""
    if isinstance(config.epochs, bool) or not isinstance(config.epochs, int) or config.epochs < 1:
        raise ConfigError(f"epochs must be a positive integer, got {config.epochs!r}")
    if isinstance(config.seed, bool) or not isinstance(config.seed, int) or config.seed < 0:
        raise ConfigError(f"seed must be a whole number >= 0, got {config.seed!r}")
    if config.remainder not in REMAINDERS:
        raise ConfigError(f"remainder must be one of {REMAINDERS}, got {config.remainder!r}")
    if config.unroll is not None and config.unroll < 1:
        raise ConfigError(f"unroll must be at least 1, got {config.unroll}")
    if not 1 <= config.devices <= jax.local_device_count():
        raise ConfigError(
            f"devices must be between 1 and the {jax.local_device_count()} local device(s), got {config.devices}"
        )
    return resolve_batch_size(config.batch_size, num_examples)


def build_model(config: TrainConfig, ds: Dataset, seed: int):
    """The configured model for ``ds``, initialised from ``seed``."""
    return make_model(
        config.model,
        ds.in_features,
        ds.outputs,
        seed=seed,
        spatial_shape=ds.spatial_shape,
        widths=config.widths,
    )


def train_and_evaluate(
    config: TrainConfig,
    dataset: Dataset | None = None,
    on_epoch: Callable[[EpochResult], None] | None = None,
) -> TrainResult:
    """Trains one model as ``config`` says and evaluates it after every epoch.

    Example:
      >>> r = train_and_evaluate(TrainConfig(dataset="linreg", model="linear",
      ...                                    batch_size="full", epochs=3, learning_rate=0.1))
      >>> [e.iterations for e in r.epochs]
      [1, 1, 1]
    """
    ds = dataset if dataset is not None else load_dataset(config.dataset)
    batch_size = check_config(config, ds.num_train)
    tx = make_optimizer(config.optimizer, config.learning_rate)
    state = init_train_state(build_model(config, ds, config.seed), tx)

    loss_fn = loss_for_task(ds.task)
    parallel = {}
    put = jax.device_put
    if config.devices > 1:  # data parallel: batch rows split over a mesh, the rest replicated
        mesh = data_mesh(jax.local_devices()[: config.devices])
        parallel = {"sharding": batch_sharding(mesh), "width": padded_width(batch_size, mesh)}
        state = place(state, mesh)
        put = functools.partial(place, mesh=mesh)
    epoch_fn = make_epoch(
        make_train_step(loss_fn),
        ds.num_train,
        batch_size,
        remainder=config.remainder,
        unroll=config.unroll or fast_unroll(batch_size),
        **parallel,
    )
    evaluate = make_evaluate(make_eval_step(loss_fn, ds.task == "classification"))
    train, test = put((ds.x_train, ds.y_train)), put((ds.x_test, ds.y_test))
    n = ds.num_train

    run_epoch = compile_program(epoch_fn, state, train, put(epoch_order(0, 0, n)), donate_argnums=(0,))
    run_eval = compile_program(lambda s, a, b: (evaluate(s, a), evaluate(s, b)), state, train, test)

    def one_epoch(state: TrainState, e: int):
        return run_epoch(state, train, put(epoch_order(config.seed, e, n)))

    history = []
    for e in range(config.epochs):
        (state, metrics), seconds = timed_call(one_epoch, state, e)  # the shuffle counts too
        tr, te = jax.device_get(run_eval(state, train, test))  # evaluation is kept out of `seconds`
        record = EpochResult(
            epoch=e + 1,
            iterations=int(metrics["loss"].shape[0]),
            train_loss=float(tr["loss"]),
            test_loss=float(te["loss"]),
            train_accuracy=float(tr["accuracy"]) if "accuracy" in tr else None,
            test_accuracy=float(te["accuracy"]) if "accuracy" in te else None,
            seconds=seconds,
            step_losses=jax.device_get(metrics["loss"]).tolist(),
        )
        history.append(record)
        if on_epoch is not None:
            on_epoch(record)
    return TrainResult(
        config=config,
        batch_size=batch_size,
        steps_per_epoch=steps_per_epoch(ds.num_train, batch_size, config.remainder),
        num_train=ds.num_train,
        epochs=history,
        compile_seconds={"epoch": run_epoch.compile_seconds, "evaluate": run_eval.compile_seconds},
        state=state,
    )
