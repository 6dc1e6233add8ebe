"""Time to target, one model at a time: what ``bench/test_convergence.py`` times.

A case is a regime of the default workload (digits MLP, plain SGD, 95% test accuracy):
a batch size at the best learning rate the committed sweep found for it
(``results/digits-mlp-sgd/sweep.json``, read here, so the two never disagree). One round
trains one model from its seed's initial weights, in the sweep's batches (each epoch in
``epoch_order(seed, epoch, N)``), evaluating the test split at the sweep's fine cadence,
until the target is reached or the budget is spent: its steps to target are the sweep's
for that seed and learning rate, and its wall time is the time to target. jbatch's round
is the sweep's own program shape (a chunk of steps, then an evaluation), compiled once
before the rounds; the peers (``bench/peers.py``) run the same schedule their own way.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import jax
import numpy as np

from jbatch.batching import epoch_batches, epoch_order, resolve_batch_size, steps_per_epoch
from jbatch.config import SweepConfig
from jbatch.engine import compile_program
from jbatch.epoch import make_evaluate, make_train_chunk
from jbatch.errors import ConfigError
from jbatch.guard import init_guard
from jbatch.loss import softmax_cross_entropy
from jbatch.optim import make_optimizer
from jbatch.recorder import rounded
from jbatch.schedule import budget_steps, layout
from jbatch.step import init_train_state, make_eval_step, make_train_step
from jbatch.summary import result_metadata

RESULTS = Path(__file__).resolve().parent.parent / "results" / "digits-mlp-sgd"
REGIMES = {"stochastic": 1, "mini-batch-4": 4, "mini-batch-16": 16, "mini-batch-64": 64, "mini-batch-256": 256,
           "full-batch": "full"}  # fmt: skip
FULL_ONLY = {"mini-batch-4", "mini-batch-256"}  # the default grid: B=1, two mini-batch sizes, full batch


@dataclasses.dataclass(frozen=True)
class Case:
    """One regime: batch size, learning rate (the sweep's best), target, budget, cadence."""

    regime: str
    batch_size: int
    learning_rate: float
    target: float
    num_train: int
    steps_per_epoch: int
    budget: int
    marks: tuple[int, ...]  # the steps after which the test split is evaluated
    source: str


def case(regime: str, results: Path = RESULTS, data: Any = None) -> Case:
    """The case of ``regime`` from the committed sweep in ``results``."""
    from jbatch.report import load_document, summarize

    doc = load_document(results)
    cfg = SweepConfig(**{k: tuple(v) if isinstance(v, list) else v for k, v in doc["config"].items()})
    n = doc["num_train"]
    b = resolve_batch_size(REGIMES[regime], n)
    row = next((s["row"] for s in summarize(doc) if s["row"]["batch_size"] == b), None)
    if row is None:
        raise ConfigError(f"{results} has no batch size {b} for regime {regime!r}")
    spe = steps_per_epoch(n, b, cfg.remainder)
    lay = layout(spe, budget_steps(cfg, spe), cfg.evals, b)
    ends = lay.chunk_ends()
    marks = tuple(int(e) for e, ev in zip(ends, lay.evaluate, strict=True) if ev)
    return Case(regime, b, row["best_learning_rate"], cfg.target_value, n, spe, lay.total_steps, marks,
                f"{results.name}/sweep.json, commit {_commit(doc, b)}")  # fmt: skip


def _commit(doc: dict[str, Any], b: int) -> str:
    """The commit that measured batch size ``b`` (its own metadata; a --force'd sweep keeps
    the document's first)."""
    return str(result_metadata(doc, doc["batch_sizes"][str(b)])["commit"]["id"])[:10]


def reached(accuracy: Any, c: Case) -> bool:
    """Whether ``accuracy`` meets the case's target as the sweep decides it: on the value
    its document records (six significant digits), so 70 of 100 right meets 0.7 although
    float32's 70/100 is 0.69999999."""
    return (rounded(accuracy) or 0.0) >= c.target


def batches_of(c: Case, seed: int, epoch: int) -> tuple[np.ndarray, np.ndarray]:
    """Epoch ``epoch``'s batches for ``seed``: indices ``[steps, B]`` and mask."""
    return epoch_batches(epoch_order(seed, epoch, c.num_train), c.batch_size)


class JbatchRunner:
    """jbatch's time to target: the sweep's train chunk (vmapped over one replica) and the
    target split's evaluation, compiled once; a round inits, trains and evaluates."""

    def __init__(self, c: Case, model, data, test):
        self.c, self.model, self.data, self.test = c, model, data, test
        self.tx = make_optimizer("sgd", c.learning_rate)
        state = init_train_state(model(0), self.tx)
        carry = (state, init_guard())
        k = max(np.diff((0, *c.marks)))
        self.k = int(k)
        whole = c.batch_size == c.num_train
        idx = np.zeros((self.k, 1 if whole else c.batch_size), np.int32)
        self.train = compile_program(make_train_chunk(make_train_step(softmax_cross_entropy), whole=whole), carry,
                                     data, idx, np.ones_like(idx, bool), np.ones(self.k, bool))  # fmt: skip
        self.evaluate = compile_program(make_evaluate(make_eval_step(softmax_cross_entropy, True)), state, test)
        self.compile_seconds = self.train.compile_seconds + self.evaluate.compile_seconds
        self.whole = whole

    def setup(self, seed: int) -> Any:
        return init_train_state(self.model(seed), self.tx)

    def run(self, state: Any, seed: int) -> dict[str, Any]:
        c, carry, done = self.c, (state, init_guard()), 0
        tables: dict[int, Any] = {}
        for mark in c.marks:
            steps = mark - done
            idx = np.zeros((self.k, 1 if self.whole else c.batch_size), np.int32)
            mask = np.zeros_like(idx, bool)
            if not self.whole:
                for j in range(steps):
                    epoch, s = divmod(done + j, c.steps_per_epoch)
                    if epoch not in tables:
                        tables = {epoch: batches_of(c, seed, epoch)}
                    idx[j], mask[j] = tables[epoch][0][s], tables[epoch][1][s]
            active = np.arange(self.k) < steps
            carry, _ = self.train(carry, self.data, idx, mask, active)
            done = mark
            if reached(jax.device_get(self.evaluate(carry[0], self.test))["accuracy"], c):  # sync point
                return {"reached": True, "steps": done}
        return {"reached": False, "steps": None}
