"""One training run from a config: ``train_and_evaluate`` (what ``jbatch train`` calls).

Builds the workload (data, model, loss, optimizer: the sweep's names, import paths and
checks), the optimizer as a sweep builds it, and the two compiled programs (epoch and
evaluation), then trains epoch by epoch, timing each epoch apart from its evaluation.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable

import jax

from jbatch.config import REMAINDERS, TrainConfig
from jbatch.core.batching import epoch_order, resolve_batch_size, steps_per_epoch
from jbatch.core.engine import fast_unroll, timed_call
from jbatch.core.epoch import make_epoch, make_evaluate
from jbatch.core.modes import noting
from jbatch.core.optim import check_hyperparameter, set_hyperparameters
from jbatch.core.parallel import batch_sharding, data_mesh, padded_width, place
from jbatch.core.step import TrainState, init_train_state, make_eval_step
from jbatch.errors import ConfigError
from jbatch.results.records import EpochRecord, TrainDocument
from jbatch.sweeps.metadata import environment_metadata
from jbatch.sweeps.optimizer import replica_values
from jbatch.sweeps.precheck import inexact
from jbatch.sweeps.session import Session
from jbatch.workloads.data import Dataset
from jbatch.workloads.workload import Workload, build, resolve

EpochResult = EpochRecord  # what one epoch did: its updates, its losses and accuracies, and its time


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
    inexact: list[str] = dataclasses.field(default_factory=list)  # precheck.inexact


def check_config(config: TrainConfig, num_examples: int) -> int:
    """Validates what the data set alone cannot; returns the resolved batch size."""
    if isinstance(config.epochs, bool) or not isinstance(config.epochs, int) or config.epochs < 1:
        raise ConfigError(f"epochs must be a positive integer, got {config.epochs!r}")
    if isinstance(config.seed, bool) or not isinstance(config.seed, int) or config.seed < 0:
        raise ConfigError(f"seed must be a whole number >= 0, got {config.seed!r}")
    if config.training.remainder not in REMAINDERS:
        raise ConfigError(f"remainder must be one of {REMAINDERS}, got {config.training.remainder!r}")
    if config.unroll is not None and config.unroll < 1:
        raise ConfigError(f"unroll must be at least 1, got {config.unroll}")
    if config.training.microbatch < 0:
        raise ConfigError(f"microbatch must be 0 (off) or a number of rows, got {config.training.microbatch}")
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

    Examples:
      >>> from jbatch.config import WorkloadSpec
      >>> r = train_and_evaluate(TrainConfig(workload=WorkloadSpec(dataset="linreg", model="linear"),
      ...                                    batch_size="full", epochs=3, learning_rate=0.1))
      >>> [e.iterations for e in r.epochs]
      [1, 1, 1]
    """
    if workload is None:
        w = config.workload
        workload = resolve(
            dataset if dataset is not None else w.dataset, w.model, w.optimizer, w.loss or None, w.widths
        )
    ds = workload.data
    batch_size = check_config(config, ds.num_train)
    n = ds.num_train
    remainder = config.training.remainder
    spe = steps_per_epoch(n, batch_size, remainder)
    session = Session.open(config.as_sweep(batch_size, config.epochs * spe), workload)  # a one-point sweep's optimizer
    opt = session.optimizer
    values = replica_values(session.config, config.hyperparameters(), batch_size, config.epochs * spe, opt.values)
    state = init_train_state(build(workload, config.seed), opt.tx)
    state = state.replace(opt_state=set_hyperparameters(state.opt_state, values))

    parallel = {}
    put = jax.device_put
    if config.devices > 1:  # data parallel: batch rows split over a mesh, the rest replicated
        mesh = data_mesh(jax.local_devices()[: config.devices])
        parallel = {"sharding": batch_sharding(mesh), "width": padded_width(batch_size, mesh)}
        state = place(state, mesh)
        put = functools.partial(place, mesh=mesh)
    unroll = config.unroll or fast_unroll(batch_size)
    epoch_fn = make_epoch(session.step, n, batch_size, remainder=remainder, unroll=unroll, **parallel)
    evaluate = make_evaluate(make_eval_step(workload.loss, workload.classification))
    train, test = put((ds.x_train, ds.y_train)), put((ds.x_test, ds.y_test))

    programs = session.programs
    with noting() as notes:  # BatchNorm layers say so while the epoch traces
        run_epoch = programs.get(
            ("train-epoch", session.step_key, n, batch_size, remainder, unroll, config.devices),
            epoch_fn,
            state,
            train,
            put(epoch_order(0, 0, n)),
            donate_argnums=(0,),
        )
    run_eval = programs.get(
        ("evaluate-both", workload.loss, workload.classification),
        lambda s, a, b: (evaluate(s, a), evaluate(s, b)),
        state,
        train,
        test,
    )

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
        inexact=inexact(notes, config.training.microbatch),
    )


def train_record(result: TrainResult) -> TrainDocument:
    """The JSON document ``jbatch train`` writes: config, per-epoch results, compile
    times and metadata (versions, backend, device kind and count, CPU, date, commit)."""
    return TrainDocument(
        config=result.config,
        batch_size=result.batch_size,
        steps_per_epoch=result.steps_per_epoch,
        num_train=result.num_train,
        compile_seconds=result.compile_seconds,
        epochs=result.epochs,
        metadata=environment_metadata(),
        inexact=result.inexact,
    )
