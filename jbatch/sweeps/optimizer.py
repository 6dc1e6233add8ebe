"""The sweep's optimizer: the user's factory with the swept hyperparameters injected (each
replica its own values), everything else a Python constant, and each replica's values at a
batch size (its schedule's budget, beta2 by the half-life rule). ``jbatch train`` builds
its optimizer here too, as a one-point sweep.
"""

from __future__ import annotations

from typing import Any, NamedTuple

from flax import nnx

from jbatch.config import SweepConfig
from jbatch.core.batching import steps_per_epoch
from jbatch.core.optim import beta2_for_batch, hyperparameters, inject, sweepable, with_schedule
from jbatch.errors import ConfigError
from jbatch.workloads.workload import Workload

PROPORTIONAL_STEPS = 2000  # at most this many updates check that a factory's update is proportional to its lr


class SweepOptimizer(NamedTuple):
    """The sweep's transformation (one object for every batch size: a static part of the
    programs), its injected hyperparameters' starting values, and how the learning rate
    enters the user's factory (``optim.sweepable``: "injected" or "scaled")."""

    tx: Any
    values: dict[str, float]
    learning_rate: str


def optimizer_for(config: SweepConfig, wl: Workload) -> SweepOptimizer:
    """The sweep's optimizer: the swept hyperparameters, the schedule's budget, and beta2
    when the half-life rule sets it per batch size are injected (each replica has its own),
    every other argument of the factory stays a Python constant. A factory that cannot
    give each replica its own values is a ``ConfigError`` here, before any training."""
    known = hyperparameters(wl.optimizer)
    axes = config.grid.axes()
    for name in axes:
        if name not in known:
            raise ConfigError(
                f"optimizer {wl.optimizer_name} has no hyperparameter {name!r} to sweep; it takes {', '.join(known)}"
            )
    values = {k: v[0] for k, v in axes.items()}
    training = config.training
    if training.beta2_reference:
        if "b2" not in known:
            raise ConfigError(
                f"the beta2 rule needs an optimizer with a b2 hyperparameter; {wl.optimizer_name} "
                f"takes {', '.join(known)}"
            )
        values.setdefault("b2", known["b2"])
    params = nnx.state(nnx.eval_shape(lambda: wl.model(0)), nnx.Param)  # shapes only: nothing runs
    n = wl.data.num_train
    longest = max(config.budget.steps_at(steps_per_epoch(n, b, training.remainder)) for b in config.grid.batch_sizes)
    base, how = sweepable(wl.optimizer, values, params, config.grid.learning_rates, min(longest, PROPORTIONAL_STEPS))
    factory = with_schedule(base, training.schedule, training.warmup, training.final_fraction)
    if factory is not base:
        values["budget"] = 1.0
    return SweepOptimizer(inject(factory, values), values, how)


def replica_values(
    config: SweepConfig, hyper: dict[str, float], batch_size: int, budget: int, start: dict[str, float]
) -> dict[str, float]:
    """One replica's injected hyperparameters at ``batch_size``: its swept values, the
    budget of the schedule, and beta2 by the half-life rule (from the swept or default b2)."""
    values = dict(hyper)
    if "budget" in start:
        values["budget"] = float(budget)
    if config.training.beta2_reference:
        values["b2"] = beta2_for_batch(hyper.get("b2", start["b2"]), batch_size, config.training.beta2_reference)
    return values
