"""The sweep's pre-check: every kind of program a sweep runs, run once on a tiny batch
before the first batch size trains, so that a failure of the user's model or optimizer
shows in seconds, as one clear line, instead of after minutes of training.

It builds every seed's model (a factory that fails for one seed), the sweep's optimizer
(``optim.sweepable``: swept values as arrays, everything else a Python constant), and then
runs, for every seed, on three training rows and one padding row: a training chunk in
train mode and the segment-end ``settle``; an evaluation in eval mode; a gradient-noise
probe; the host round trip a replay of a pruned run takes. The losses before any update
must be finite. While the training program traces, BatchNorm layers say how many values
per feature one row gives them (``modes.noting``): a batch size whose batches (or
micro-batches) can hold a single real row is refused for such a model. What cannot be
exact (micro-batches of a BatchNorm model) is returned, to be recorded in the document.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from jbatch.core.engine import Programs
from jbatch.core.epoch import make_chunk, make_evaluate
from jbatch.core.guard import init_guard, settle
from jbatch.core.modes import min_rows, noting
from jbatch.core.replica import stack_host
from jbatch.core.step import make_eval_step
from jbatch.errors import ConfigError, one_line
from jbatch.results.records import Checks
from jbatch.sweeps.noise import gradient_moments
from jbatch.sweeps.session import Session


def row_counts(num_examples: int, batch_size: int, remainder: str, microbatch: int = 0) -> set[int]:
    """The numbers of real rows the training (micro-)batches of an epoch hold.

    Examples:
      >>> sorted(row_counts(10, 4, "keep")), sorted(row_counts(10, 4, "drop")), sorted(row_counts(10, 4, "keep", 3))
      ([2, 4], [4], [1, 2, 3])
    """
    counts = (
        {batch_size}
        if remainder == "drop" or num_examples % batch_size == 0
        else {batch_size, num_examples % batch_size}
    )
    if microbatch and batch_size > microbatch:  # micro-batches of padding only are skipped
        counts = {min(microbatch, c - i * microbatch) for c in counts for i in range(-(-c // microbatch))}
    return counts


def precheck(session: Session, sizes: list[int]) -> Checks:
    """Runs the sweep's programs once on a tiny batch for every seed (see the module's
    docstring); a failure is a ``ConfigError`` naming what failed. Builds each seed's
    initial state (the sweep reuses them) and returns what the sweep document records: how
    the learning rate enters the optimizer, whether the model keeps batch statistics, and
    what is not exact."""
    config, wl = session.config, session.workload
    for seed in config.grid.seeds:
        session.initial_state(seed)
    rows = min(3, wl.data.num_train)
    x, y = (jnp.asarray(a[:rows]) for a in (wl.data.x_train, wl.data.y_train))
    idx, mask = np.asarray([list(range(rows)) + [0]]), np.asarray([[True] * rows + [False]])  # one padding row
    chunk = make_chunk(session.step, whole=False)

    def train(state):
        (end, after), out = chunk((state, init_guard()), (x, y), idx, mask, np.ones(1, bool))
        return out["loss"][0], settle(state, state, end, init_guard(), after)[0]

    evaluate = make_evaluate(make_eval_step(wl.loss, wl.classification), batch_size=2)
    programs = {
        "training (train mode)": (("precheck-train", session.step_key), train),
        "evaluation (eval mode)": (
            ("precheck-evaluate", wl.loss, wl.classification),
            lambda s: evaluate(s, (x, y))["loss"],
        ),
        "the gradient-noise probe": (
            ("precheck-probe", wl.loss),
            lambda s: gradient_moments(s, (x, y), wl.loss, unroll=1)[
                "grad_sq"
            ],  # one gradient in the loop: quick to build
        ),
    }
    own = Programs(options=session.programs.options)  # its own: BatchNorm's notes come while these trace
    with noting() as notes:
        for seed in config.grid.seeds:
            state = session.initial_state(seed)
            for what, (key, fn) in programs.items():
                try:
                    out = jax.block_until_ready(own.get(key, fn, state)(state))
                except Exception as e:
                    raise ConfigError(f"the pre-check failed in {what}, seed {seed}: {one_line(e)}") from None
                loss = out[0] if isinstance(out, tuple) else out
                if what != "the gradient-noise probe" and not np.isfinite(float(loss)):
                    raise ConfigError(
                        f"the model's loss before any update is {float(loss)} in {what}, seed {seed}, "
                        f"on {rows} training rows: check its initialisation and the data"
                    )
                if what.startswith("training"):  # a replay stacks kept host copies (typed RNG keys included)
                    jax.device_put(stack_host([jax.device_get(out[1])] * 2))
    need = min_rows(notes)
    training = config.training
    for b in sizes:
        fewest = min(row_counts(wl.data.num_train, b, training.remainder, training.microbatch))
        if fewest < need:
            layer = next(n["layer"] for n in notes if n["values_per_row"] == 1).removeprefix("RowMasked")
            how = (
                f"leave B = {b} out"
                if fewest == b
                else f"its last {'micro-' if training.microbatch else ''}batch holds {fewest} real row: choose another "
                f"batch size{', or remainder drop' if training.remainder == 'keep' else ''}"
            )
            raise ConfigError(
                f"batch size {b}: the model's {layer} normalises over the batch's rows alone (one value "
                f"per feature per row), so a batch of one real row gives it zero variance: its output "
                f"would not depend on its input and no gradient would pass below it (PyTorch refuses "
                f"such a batch); {how}, or normalise without the batch (LayerNorm, "
                "GroupNorm)"
            )
    return Checks(
        learning_rate=session.optimizer.learning_rate,
        batch_statistics=bool(notes),
        inexact=inexact(notes, training.microbatch),
    )


def inexact(notes: list[dict], microbatch: int) -> list[str]:
    """What is not exact in training a model whose BatchNorm layers left ``notes`` while its
    training program traced (``modes.noting``), with micro-batches of ``microbatch`` rows
    (0: none): the lines a sweep document's ``checks.inexact`` and a ``jbatch train`` record keep."""
    lines = []
    if notes and microbatch:
        lines.append(
            f"micro-batches of {microbatch} rows: each is normalised with its own batch statistics "
            "and updates the running averages, so an update is not the one-shot batch's (as gradient "
            "accumulation in any framework)"
        )
    if any(not n["rows_masked"] for n in notes):
        lines.append(
            "a BatchNorm's input does not have the batch's rows first, so the padding rows of a partial "
            "batch may enter its statistics"
        )
    return lines
