"""JSON records of runs: results plus the metadata of the machine and software behind them."""

from __future__ import annotations

import dataclasses
from typing import Any

from jbatch.metadata import environment_metadata
from jbatch.train import TrainResult


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
