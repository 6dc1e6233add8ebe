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
import time
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from jbatch.analysis.summary import result_metadata
from jbatch.core.batching import epoch_batches, epoch_order, resolve_batch_size, steps_per_epoch
from jbatch.core.engine import compile_program, timed_call
from jbatch.core.epoch import make_chunk, make_evaluate
from jbatch.core.guard import init_guard
from jbatch.core.loss import softmax_cross_entropy
from jbatch.core.optim import make_optimizer
from jbatch.core.step import init_train_state, make_eval_step, make_train_step
from jbatch.errors import ConfigError
from jbatch.sweeps.cadence import layout
from jbatch.sweeps.recorder import rounded

RESULTS = Path(__file__).resolve().parent.parent / "results" / "digits-mlp-sgd"
REGIMES = {
    "stochastic": 1,
    "mini-batch-4": 4,
    "mini-batch-16": 16,
    "mini-batch-64": 64,
    "mini-batch-256": 256,
    "full-batch": "full",
}
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
    from jbatch.analysis.summary import summarize
    from jbatch.results import read_sweep

    doc = read_sweep(results)
    cfg = doc.config
    n = doc.num_train
    b = resolve_batch_size(REGIMES[regime], n)
    row = next((s["row"] for s in summarize(doc) if s["row"]["batch_size"] == b), None)
    if row is None:
        raise ConfigError(f"{results} has no batch size {b} for regime {regime!r}")
    spe = steps_per_epoch(n, b, cfg.training.remainder)
    lay = layout(spe, cfg.budget.steps_at(spe), cfg.measurement.evals, b)
    ends = lay.chunk_ends()
    marks = tuple(int(e) for e, ev in zip(ends, lay.evaluate, strict=True) if ev)
    return Case(
        regime,
        b,
        row["best_learning_rate"],
        cfg.target.value,
        n,
        spe,
        lay.total_steps,
        marks,
        f"{results.name}/sweep.json, commit {_commit(doc, b)}",
    )


def _commit(doc: Any, b: int) -> str:
    """The commit that measured batch size ``b`` (its own metadata; a --force'd sweep keeps
    the document's first)."""
    return str(result_metadata(doc, doc.result(b)).commit.id)[:10]


def reached(accuracy: Any, c: Case) -> bool:
    """Whether ``accuracy`` meets the case's target as the sweep decides it: on the value
    its document records (six significant digits), so 70 of 100 right meets 0.7 although
    float32's 70/100 is 0.69999999."""
    return (rounded(accuracy) or 0.0) >= c.target


def correct_needed(target: float, count: int) -> int:
    """The fewest correct predictions out of ``count`` whose accuracy meets ``target`` as
    ``reached`` decides it (worked out on the host once: the compiled program then
    compares whole numbers).

    Examples:
      >>> correct_needed(0.95, 360), correct_needed(0.7, 100)
      (342, 70)
    """
    return next(k for k in range(count + 1) if (rounded(np.float32(k) / np.float32(count)) or 0.0) >= target)


def batches_of(c: Case, seed: int, epoch: int) -> tuple[np.ndarray, np.ndarray]:
    """Epoch ``epoch``'s batches for ``seed``: indices ``[steps, B]`` and mask."""
    return epoch_batches(epoch_order(seed, epoch, c.num_train), c.batch_size)


def schedule_tables(c: Case, seed: int, width: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Every chunk of the case's schedule for ``seed``: ``idx [marks, width, B]``, ``mask``
    alike, ``active [marks, width]`` (a chunk trains up to its mark; the rest is skipped)."""
    b = 1 if c.batch_size == c.num_train else c.batch_size
    marks = len(c.marks)
    idx, mask = np.zeros((marks, width, b), np.int32), np.zeros((marks, width, b), bool)
    active = np.zeros((marks, width), bool)
    tables: dict[int, Any] = {}
    done = 0
    for m, mark in enumerate(c.marks):
        for j in range(mark - done):
            active[m, j] = True
            if c.batch_size < c.num_train:
                epoch, s = divmod(done + j, c.steps_per_epoch)
                if epoch not in tables:
                    tables = {epoch: batches_of(c, seed, epoch)}
                idx[m, j], mask[m, j] = tables[epoch][0][s], tables[epoch][1][s]
        done = mark
    return idx, mask, active


class JbatchRunner:
    """jbatch's time to target as ONE compiled call: a ``lax.while_loop`` over the case's
    evaluation marks, each iteration training up to the next mark (the sweep's chunk: a
    scan of checked steps) and evaluating the test split, until the target is met or the
    budget is spent. The whole schedule's batches are cut on the host and put on the
    device in ``setup`` (not timed); ``run`` is one dispatch and one host sync.

    ``profile`` runs the same schedule the way the sweep does (a compiled call per chunk,
    an evaluation call and a host sync per mark) and splits its wall time into training,
    evaluation and the rest (dispatch, host synchronisation, Python): what fusing saves."""

    def __init__(self, c: Case, model, data, test):
        self.c, self.model, self.data, self.test = c, model, data, test
        self.tx = make_optimizer("sgd", c.learning_rate)
        state = init_train_state(model(0), self.tx)
        self.width = int(max(np.diff((0, *c.marks))))
        self.whole = c.batch_size == c.num_train
        chunk = make_chunk(make_train_step(softmax_cross_entropy), whole=self.whole)
        evaluate = make_evaluate(make_eval_step(softmax_cross_entropy, True))
        needed = correct_needed(c.target, int(test[0].shape[0]))
        marks = jnp.asarray(c.marks, jnp.int32)

        def to_target(state, data, test, idx, mask, active):
            def cond(loop):
                return (loop[1] < len(c.marks)) & ~loop[2]

            def body(loop):
                carry, m, _ = loop
                carry, _ = chunk(carry, data, idx[m], mask[m], active[m])
                correct = evaluate(carry[0], test)["accuracy"] * test[0].shape[0]
                return carry, m + 1, jnp.round(correct) >= needed

            carry, m, hit = jax.lax.while_loop(
                cond, body, ((state, init_guard()), jnp.zeros((), jnp.int32), jnp.zeros((), bool))
            )
            return jnp.where(hit, marks[jnp.maximum(m - 1, 0)], -1)

        example = schedule_tables(c, 0, self.width)
        self.program = compile_program(to_target, state, data, test, *example)
        # the sweep's form, for the profile: a call per chunk, an evaluation call per mark
        self.chunk = compile_program(chunk, (state, init_guard()), data, *(a[0] for a in example))
        self.evaluate = compile_program(evaluate, state, test)
        self.compile_seconds = self.program.compile_seconds
        self.tables: dict[int, Any] = {}

    def setup(self, seed: int) -> Any:
        """Seed ``seed``'s initial state and its schedule's batches, on the device (untimed)."""
        if seed not in self.tables:
            self.tables[seed] = jax.device_put(schedule_tables(self.c, seed, self.width))
        return init_train_state(self.model(seed), self.tx), self.tables[seed]

    def run(self, state: Any, seed: int) -> dict[str, Any]:
        state, tables = state
        steps = int(self.program(state, self.data, self.test, *tables))  # sync point: the one host transfer
        return {"reached": steps >= 0, "steps": steps if steps >= 0 else None}

    def profile(self, seed: int) -> dict[str, Any]:
        """One run of the schedule in the sweep's form (see the class docstring): seconds of
        training calls, of evaluation calls, and of the rest, each around blocking calls."""
        state, tables = self.setup(seed)
        idx, mask, active = (np.asarray(a) for a in tables)
        carry, parts, start = (state, init_guard()), {"train": 0.0, "evaluate": 0.0}, time.perf_counter()
        steps = None
        for m, mark in enumerate(self.c.marks):
            (carry, _), seconds = timed_call(self.chunk, carry, self.data, idx[m], mask[m], active[m])
            parts["train"] += seconds
            out, seconds = timed_call(self.evaluate, carry[0], self.test)
            parts["evaluate"] += seconds
            if reached(jax.device_get(out)["accuracy"], self.c):
                steps = mark
                break
        wall = time.perf_counter() - start
        return parts | {
            "rest": wall - parts["train"] - parts["evaluate"],
            "wall": wall,
            "steps": steps,
            "calls": 2 * (m + 1),
        }
