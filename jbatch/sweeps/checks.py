"""What a sweep's config must satisfy for its data set, checked before anything runs
(``check_sweep``): each a one-line ``ConfigError``."""

from __future__ import annotations

import dataclasses
import math

from jbatch.config import HIGHER_IS_BETTER, SCHEDULES, SweepConfig, key_of
from jbatch.core.batching import resolve_batch_size
from jbatch.core.optim import check_hyperparameter
from jbatch.errors import ConfigError
from jbatch.workloads.data import Dataset


def check_sweep(config: SweepConfig, ds: Dataset) -> list[int]:
    """Validates a sweep against its data set; returns the resolved batch sizes."""
    grid, training, target = config.grid, config.training, config.target
    if not grid.batch_sizes:
        raise ConfigError("the sweep has no batch sizes")
    if not grid.learning_rates:
        raise ConfigError("the learning-rate grid is empty")
    if not grid.seeds:
        raise ConfigError("the sweep has no seeds")
    if any(isinstance(s, bool) or not isinstance(s, int) or s < 0 for s in grid.seeds):
        raise ConfigError(f"seeds must be whole numbers >= 0, got {list(grid.seeds)}")
    for name, values in grid.axes().items():
        for value in values:
            check_hyperparameter(name, value)
    if training.schedule not in SCHEDULES:
        raise ConfigError(f"unknown schedule {training.schedule!r}; known: {', '.join(SCHEDULES)}")
    if not 0 <= training.warmup < 1 or not 0 <= training.final_fraction <= 1:
        raise ConfigError(
            f"warmup must be in [0, 1) and final_fraction in [0, 1], got {training.warmup}, {training.final_fraction}"
        )
    if training.beta2_reference < 0:
        raise ConfigError(f"beta2_reference must be 0 (off) or a batch size, got {training.beta2_reference}")
    if target.metric not in HIGHER_IS_BETTER:
        raise ConfigError(f"unknown target metric {target.metric!r}; known: {', '.join(HIGHER_IS_BETTER)}")
    if not math.isfinite(target.value):
        raise ConfigError(f"target value must be finite, got {target.value}")
    if ds.task != "classification" and target.metric.endswith("accuracy"):
        raise ConfigError(
            f"data set {ds.name!r} has float labels, so it is treated as a regression (mean squared "
            "error), which has no accuracy: give integer class labels for a classification, or a loss "
            "target (test_loss)"
        )
    for group, least in ((config.budget, 1), (config.measurement, 1)):
        for f in dataclasses.fields(group):
            value = getattr(group, f.name)
            floor = (
                0 if f.name in ("noise_checkpoints", "eval_examples", "noise_examples", "sample_examples") else least
            )
            if value < floor:
                raise ConfigError(f"{key_of(f)} must be {'0 or more' if floor == 0 else 'at least 1'}, got {value}")
    sizes = [resolve_batch_size(b, ds.num_train) for b in grid.batch_sizes]
    if len(set(sizes)) != len(sizes):
        raise ConfigError(f"batch sizes repeat: {list(grid.batch_sizes)} -> {sizes}")
    return sizes
