"""Where the names and modules of jbatch 0.1 went, for one release of deprecation warnings.

``MOVED_NAMES``: what ``jbatch.X`` was, now in a named submodule (``jbatch.__getattr__``
warns and resolves). ``MOVED_MODULES``: module paths of 0.1 (``jbatch.data``,
``jbatch.sweeps.config``, ...), each an alias of its new module, imported with a warning by
the finder installed below.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.util
import sys
import warnings
from typing import Any

MOVED_NAMES: dict[str, tuple[str, str]] = {
    "epoch_batches": ("jbatch.core.batching", "epoch_batches"),
    "last_batch_size": ("jbatch.core.batching", "last_batch_size"),
    "resolve_batch_size": ("jbatch.core.batching", "resolve_batch_size"),
    "CompileCounter": ("jbatch.core.engine", "CompileCounter"),
    "compile_program": ("jbatch.core.engine", "compile_program"),
    "timed_call": ("jbatch.core.engine", "timed_call"),
    "LossSum": ("jbatch.core.loss", "LossSum"),
    "mean_squared_error": ("jbatch.core.loss", "mean_squared_error"),
    "softmax_cross_entropy": ("jbatch.core.loss", "softmax_cross_entropy"),
    "parse_phases": ("jbatch.core.phases", "parse_phases"),
    "phase_learning_rates": ("jbatch.core.phases", "phase_learning_rates"),
    "OPTIMIZERS": ("jbatch.core.optim", "OPTIMIZERS"),
    "get_learning_rate": ("jbatch.core.optim", "get_learning_rate"),
    "make_optimizer": ("jbatch.core.optim", "make_optimizer"),
    "set_hyperparameters": ("jbatch.core.optim", "set_hyperparameters"),
    "set_learning_rate": ("jbatch.core.optim", "set_learning_rate"),
    "init_replicas": ("jbatch.core.replica", "init_replicas"),
    "replica_orders": ("jbatch.core.replica", "replica_orders"),
    "stack": ("jbatch.core.replica", "stack"),
    "unstack": ("jbatch.core.replica", "unstack"),
    "TrainConfig": ("jbatch.config", "TrainConfig"),
    "TrainResult": ("jbatch.sweeps.train", "TrainResult"),
    "train_and_evaluate": ("jbatch.sweeps.train", "train_and_evaluate"),
    "load_digits": ("jbatch.workloads.data", "load_digits"),
    "MODELS": ("jbatch.workloads.model", "BUILDERS"),
    "make_model": ("jbatch.workloads.model", "make_model"),
}

MOVED_MODULES: dict[str, str] = {
    **{
        f"jbatch.{m}": f"jbatch.core.{m}"
        for m in ("batching", "engine", "epoch", "guard", "loss", "modes", "optim", "parallel", "replica", "step")
    },
    **{f"jbatch.{m}": f"jbatch.workloads.{m}" for m in ("data", "language", "mnist1d", "model", "transformer")},
    **{
        f"jbatch.{m}": f"jbatch.sweeps.{m}"
        for m in ("api", "distributed", "metadata", "noise", "presets", "progress", "recorder", "timing", "train")
    },
    **{f"jbatch.{m}": f"jbatch.analysis.{m}" for m in ("ladder", "stats", "tradeoff")},
    **{f"jbatch.{m}": f"jbatch.report.{m}" for m in ("claims", "compare", "plot", "table", "throughput")},
    "jbatch.summary": "jbatch.analysis.summary",
    "jbatch.study": "jbatch.sweeps.driver",
    "jbatch.schedule": "jbatch.sweeps.cadence",
    "jbatch.config": "jbatch.config",
    "jbatch.sweeps.config": "jbatch.config",
}
MOVED_MODULES = {old: new for old, new in MOVED_MODULES.items() if old != new}


class _Alias(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Imports a 0.1 module path as its new module, with a ``DeprecationWarning``."""

    def find_spec(self, name: str, path: Any = None, target: Any = None):
        if name not in MOVED_MODULES:
            return None
        return importlib.util.spec_from_loader(name, self)

    def create_module(self, spec):
        warnings.warn(
            f"{spec.name} is deprecated and will be removed in 0.3; import {MOVED_MODULES[spec.name]}",
            DeprecationWarning,
            stacklevel=2,
        )
        module = importlib.import_module(MOVED_MODULES[spec.name])
        sys.modules[spec.name] = module
        return module

    def exec_module(self, module) -> None:
        return None


if not any(isinstance(f, _Alias) for f in sys.meta_path):
    sys.meta_path.append(_Alias())
