"""What a sweep's config must satisfy for its data set, checked before anything runs
(``check_sweep``): each a one-line ``ConfigError``."""

from __future__ import annotations

import math

from jbatch.analysis.selection import HIGHER_IS_BETTER
from jbatch.core.batching import resolve_batch_size
from jbatch.core.optim import SCHEDULES, check_hyperparameter
from jbatch.errors import ConfigError
from jbatch.sweeps.config import SweepConfig
from jbatch.workloads.data import Dataset


def check_sweep(config: SweepConfig, ds: Dataset) -> list[int]:
    """Validates a sweep against its data set; returns the resolved batch sizes."""
    if not config.batch_sizes:
        raise ConfigError("the sweep has no batch sizes")
    if not config.learning_rates:
        raise ConfigError("the learning-rate grid is empty")
    if not config.seeds:
        raise ConfigError("the sweep has no seeds")
    if any(isinstance(s, bool) or not isinstance(s, int) or s < 0 for s in config.seeds):
        raise ConfigError(f"seeds must be whole numbers >= 0, got {list(config.seeds)}")
    for name, grid in config.axes().items():
        for value in grid:
            check_hyperparameter(name, value)
    if config.schedule not in SCHEDULES:
        raise ConfigError(f"unknown schedule {config.schedule!r}; known: {', '.join(SCHEDULES)}")
    if not 0 <= config.warmup < 1 or not 0 <= config.final_fraction <= 1:
        raise ConfigError(f"warmup must be in [0, 1) and final_fraction in [0, 1], got {config.warmup}, "
                          f"{config.final_fraction}")  # fmt: skip
    if config.beta2_reference < 0:
        raise ConfigError(f"beta2_reference must be 0 (off) or a batch size, got {config.beta2_reference}")
    if config.target_metric not in HIGHER_IS_BETTER:
        raise ConfigError(f"unknown target metric {config.target_metric!r}; known: {', '.join(HIGHER_IS_BETTER)}")
    if not math.isfinite(config.target_value):
        raise ConfigError(f"target value must be finite, got {config.target_value}")
    if ds.task != "classification" and config.target_metric.endswith("accuracy"):
        raise ConfigError(f"data set {ds.name!r} has float labels, so it is treated as a regression (mean squared "
                          "error), which has no accuracy: give integer class labels for a classification, or a loss "
                          "target (test_loss)")  # fmt: skip
    for field in ("budget_steps", "budget_epochs", "evals", "coarse_evals", "timing_rounds", "noise_groups",
                  "noise_unroll"):
        if getattr(config, field) < 1:
            raise ConfigError(f"{field} must be at least 1, got {getattr(config, field)}")
    for field in ("noise_checkpoints", "eval_examples", "noise_examples", "sample_examples"):
        if getattr(config, field) < 0:
            raise ConfigError(f"{field} must be 0 or more, got {getattr(config, field)}")
    sizes = [resolve_batch_size(b, ds.num_train) for b in config.batch_sizes]
    if len(set(sizes)) != len(sizes):
        raise ConfigError(f"batch sizes repeat: {list(config.batch_sizes)} -> {sizes}")
    return sizes
