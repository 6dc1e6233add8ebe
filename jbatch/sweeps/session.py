"""What one sweep (or one advice) shares across its batch sizes, as one value: the config,
the workload, the optimizer (a static part of every program: one object for all), the data
on the device, each seed's initial state, the training step and the compiled programs.

Every training and evaluation program the sweep, its timing, its noise probes, ``jbatch
advise``, its branches and the warm-up check run is built here (``train_program``,
``evaluation``, ``epoch``), through ``engine.Programs``: the same compiler options, keyed by
what determines the program (the loss and micro-batches of the step, the shapes), each
compiled once.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Any

import jax
import numpy as np

from jbatch.config import SweepConfig
from jbatch.core.engine import Program, Programs, fast_unroll
from jbatch.core.epoch import make_chunk, make_epoch, make_evaluate, make_needed
from jbatch.core.optim import set_hyperparameters
from jbatch.core.step import TrainState, init_train_state, make_eval_step, make_train_step
from jbatch.sweeps.optimizer import SweepOptimizer, optimizer_for
from jbatch.workloads.data import to_device
from jbatch.workloads.workload import Workload, build


@dataclasses.dataclass
class Session:
    """See the module's docstring. ``open`` builds one for a config and workload."""

    config: SweepConfig
    workload: Workload
    optimizer: SweepOptimizer
    programs: Programs
    train: Any  # (x, y) of the training split, on the device
    test: Any
    initial: dict[int, TrainState] = dataclasses.field(default_factory=dict)

    @classmethod
    def open(cls, config: SweepConfig, workload: Workload, programs: Programs | None = None) -> Session:
        """A session for ``config`` on ``workload``; ``programs`` to share compiled programs
        with another (a sweep and an advice of the same workload, in one process)."""
        ds = workload.data
        return cls(
            config,
            workload,
            optimizer_for(config, workload),
            Programs() if programs is None else programs,
            to_device(ds.x_train, ds.y_train),
            to_device(ds.x_test, ds.y_test),
        )

    @property
    def microbatch(self) -> int | None:
        return self.config.training.microbatch or None

    @functools.cached_property
    def step(self):
        """The training step every program of the session runs."""
        return make_train_step(self.workload.loss, self.microbatch)

    @property
    def step_key(self) -> tuple:
        """What identifies ``step`` in program keys: its loss and micro-batches."""
        return ("step", self.workload.loss, self.microbatch)

    def split(self, name: str) -> Any:
        return self.train if name == "train" else self.test

    def initial_state(self, seed: int) -> TrainState:
        """``seed``'s model with the sweep's optimizer, built once (construction is eager: slow)."""
        if seed not in self.initial:
            self.initial[seed] = init_train_state(build(self.workload, seed), self.optimizer.tx)
        return self.initial[seed]

    def fresh(self, seed: int = 0, values: dict[str, float] | None = None) -> TrainState:
        """A new training state of ``seed`` (the grid's first values, or ``values`` injected)."""
        state = init_train_state(build(self.workload, seed), self.optimizer.tx)
        return state if not values else state.replace(opt_state=set_hyperparameters(state.opt_state, values))

    def train_program(self, carry: Any, batches: tuple, *, whole: bool, group: int | None) -> Program:
        """The sweep's training chunk of every replica slot (``core.epoch.make_chunk``), its
        carry donated."""
        return self.programs.get(
            ("chunk", self.step_key, whole),
            make_chunk(self.step, whole=whole),
            carry,
            self.train,
            *batches,
            in_axes=(0, None, 0, None, None),
            donate_argnums=(0,),
            replica_batch=group,
        )

    def evaluation(self, state: Any, data: Any, *, replicas: bool = False, group: int | None = None) -> Program:
        """The evaluation of a split (loss, and accuracy for a classification) in eval mode:
        of one model ``(state, data)``, or of every replica ``(states, data, need)`` when
        ``replicas`` (those not in ``need`` skipped: ``core.epoch.make_needed``)."""
        wl = self.workload
        evaluate = make_evaluate(make_eval_step(wl.loss, wl.classification))
        key = ("evaluate", wl.loss, wl.classification, replicas)
        if not replicas:
            return self.programs.get(key, evaluate, state, data)
        on = np.ones(jax.tree.leaves(state)[0].shape[0], bool)
        return self.programs.get(key, make_needed(evaluate), state, data, on, in_axes=(0, None, 0), replica_batch=group)

    def epoch(self, state: TrainState, rows: int, batch_size: int, order: Any) -> Program:
        """The scan-fused epoch of ``rows`` examples at ``batch_size`` (one model, its state
        donated): what the timing rounds and ``jbatch train`` run."""
        remainder = self.config.training.remainder
        unroll = fast_unroll(batch_size)
        fn = make_epoch(self.step, rows, batch_size, remainder=remainder, unroll=unroll)
        return self.programs.get(
            ("epoch", self.step_key, rows, batch_size, remainder, unroll),
            fn,
            state,
            self.train,
            order,
            donate_argnums=(0,),
        )
