"""One training run from a config: ``train_and_evaluate`` (what ``jbatch train`` calls).

Builds the workload (data, model, loss, optimizer: the sweep's names, import paths and
checks), the optimizer as a sweep builds it, and the two compiled programs (epoch and
evaluation), then trains epoch by epoch, timing each epoch apart from its evaluation.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable
from typing import Any

import jax

from jbatch.core.batching import REMAINDERS, BatchSize, epoch_order, resolve_batch_size, steps_per_epoch
from jbatch.core.engine import compile_program, fast_unroll, timed_call
from jbatch.core.epoch import make_epoch, make_evaluate
from jbatch.core.optim import check_hyperparameter, set_hyperparameters
from jbatch.core.parallel import batch_sharding, data_mesh, padded_width, place
from jbatch.core.step import TrainState, init_train_state, make_eval_step, make_train_step
from jbatch.errors import ConfigError
from jbatch.sweeps.config import TRAINING_OPTIONS, SweepConfig
from jbatch.sweeps.metadata import environment_metadata
from jbatch.sweeps.optimizer import optimizer_for, replica_values
from jbatch.workloads.data import Dataset
from jbatch.workloads.workload import Workload, build, resolve


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """A single training run: the workload and training options of a sweep
    (``SweepConfig``: data set, model, optimizer, loss, schedule, micro-batches, ...; a
    built-in name or an import path each) at one batch size, learning rate and seed.
    ``batch_size`` None or "full" is full-batch descent; ``momentum``, ``b2`` and
    ``weight_decay`` (None: the optimizer's default) are single values of what a sweep
    can vary."""

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
    devices: int = 1  # > 1: data parallel over this many local devices (jbatch.core.parallel)
    loss: str = ""
    momentum: float | None = None
    b2: float | None = None
    weight_decay: float | None = None
    beta2_reference: int = 0
    schedule: str = "constant"
    warmup: float = 0.0
    final_fraction: float = 0.0
    microbatch: int = 0

    @classmethod
    def from_sweep(cls, sweep: SweepConfig, **run: Any) -> TrainConfig:
        """The run of ``sweep``'s workload and training options given by ``run``
        (``batch_size``, ``epochs``, ``learning_rate``, ``seed``, ``devices``, ...). A grid
        of more than one value (``momentum=(0.9, 0.99)``) is a ``ConfigError``: a run takes one."""
        values = {k: getattr(sweep, k) for k in TRAINING_OPTIONS}
        for name in HYPERPARAMETERS:
            grid = values[name]
            if len(grid) > 1:
                raise ConfigError(f"a training run takes one {name} value, got {list(grid)}")
            values[name] = grid[0] if grid else None
        return cls(**(values | run))

    def hyperparameters(self) -> dict[str, float]:
        """The learning rate and every other hyperparameter given a value."""
        given = {k: getattr(self, k) for k in HYPERPARAMETERS if getattr(self, k) is not None}
        return {"learning_rate": self.learning_rate} | given

    def as_sweep(self, batch_size: int, budget: int) -> SweepConfig:
        """The one-point sweep this run is (its optimizer is built as the sweep's is)."""
        grids = {k: (v,) for k, v in self.hyperparameters().items() if k != "learning_rate"}
        return SweepConfig(dataset=self.dataset, model=self.model, widths=self.widths, optimizer=self.optimizer,
                           loss=self.loss, batch_sizes=(batch_size,), learning_rates=(self.learning_rate,),
                           seeds=(self.seed,), beta2_reference=self.beta2_reference, schedule=self.schedule,
                           warmup=self.warmup, final_fraction=self.final_fraction, budget_steps=budget,
                           budget_epochs=self.epochs, microbatch=self.microbatch, remainder=self.remainder,
                           **grids)  # fmt: skip


HYPERPARAMETERS = ("momentum", "b2", "weight_decay")  # what a sweep varies besides the learning rate


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
    if config.microbatch < 0:
        raise ConfigError(f"microbatch must be 0 (off) or a number of rows, got {config.microbatch}")
    if not 1 <= config.devices <= jax.local_device_count():
        raise ConfigError(
            f"devices must be between 1 and the {jax.local_device_count()} local device(s), got {config.devices}"
        )
    for name, value in config.hyperparameters().items():
        check_hyperparameter(name, value)
    return resolve_batch_size(config.batch_size, num_examples)


def train_and_evaluate(
    config: TrainConfig,
    dataset: Dataset | None = None,
    on_epoch: Callable[[EpochResult], None] | None = None,
    workload: Workload | None = None,
) -> TrainResult:
    """Trains one model as ``config`` says and evaluates it (eval mode) after every epoch.
    ``dataset`` replaces the named data set, ``workload`` the whole named workload
    (``jbatch.workloads.workload.resolve``: a user's model, data and optimizer factory as values).

    Example:
      >>> r = train_and_evaluate(TrainConfig(dataset="linreg", model="linear",
      ...                                    batch_size="full", epochs=3, learning_rate=0.1))
      >>> [e.iterations for e in r.epochs]
      [1, 1, 1]
    """
    if workload is None:
        workload = resolve(dataset if dataset is not None else config.dataset, config.model, config.optimizer,
                           config.loss or None, config.widths)  # fmt: skip
    ds = workload.data
    batch_size = check_config(config, ds.num_train)
    n = ds.num_train
    spe = steps_per_epoch(n, batch_size, config.remainder)
    sweep = config.as_sweep(batch_size, config.epochs * spe)
    opt = optimizer_for(sweep, workload)  # as a sweep builds it: the same factories, schedules and checks
    values = replica_values(sweep, workload, config.hyperparameters(), batch_size, config.epochs * spe, opt.values)
    state = init_train_state(build(workload, config.seed), opt.tx)
    state = state.replace(opt_state=set_hyperparameters(state.opt_state, values))

    parallel = {}
    put = jax.device_put
    if config.devices > 1:  # data parallel: batch rows split over a mesh, the rest replicated
        mesh = data_mesh(jax.local_devices()[: config.devices])
        parallel = {"sharding": batch_sharding(mesh), "width": padded_width(batch_size, mesh)}
        state = place(state, mesh)
        put = functools.partial(place, mesh=mesh)
    epoch_fn = make_epoch(
        make_train_step(workload.loss, config.microbatch or None),
        n,
        batch_size,
        remainder=config.remainder,
        unroll=config.unroll or fast_unroll(batch_size),
        **parallel,
    )
    evaluate = make_evaluate(make_eval_step(workload.loss, workload.classification))
    train, test = put((ds.x_train, ds.y_train)), put((ds.x_test, ds.y_test))

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
        steps_per_epoch=spe,
        num_train=n,
        epochs=history,
        compile_seconds={"epoch": run_epoch.compile_seconds, "evaluate": run_eval.compile_seconds},
        state=state,
    )


def train_record(result: TrainResult) -> dict[str, Any]:
    """The JSON document ``jbatch train`` writes: config, per-epoch results, compile
    times and metadata (versions, backend, device kind and count, CPU, date, commit)."""
    return {
        "kind": "jbatch.train",
        "config": dataclasses.asdict(result.config),
        "batch_size": result.batch_size,
        "steps_per_epoch": result.steps_per_epoch,
        "num_train": result.num_train,
        "compile_seconds": result.compile_seconds,
        "epochs": [dataclasses.asdict(e) for e in result.epochs],
        "metadata": environment_metadata(),
    }
