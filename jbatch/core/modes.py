"""A model's forward pass as jbatch runs it: in the mode Flax NNX means, over the real rows.

Flax NNX models carry more than parameters (``nnx.BatchStat`` running averages, the
``nnx.RngState`` of Dropout or of an ``nnx.RNN``'s carry) and their mode:
``model.train()`` / ``model.eval()`` switch Dropout's ``deterministic`` and BatchNorm's
``use_running_average``. ``apply`` merges a fresh copy of the model inside the traced
function (``copy=True``: its state may then change at that trace level), sets its mode,
runs it and returns the state it left (``rest``: batch statistics, RNG counters):

* ``"train"``: updates (Dropout on, BatchNorm on the batch's statistics, which it also
  folds into its running averages);
* ``"eval"``: every evaluation (Dropout off, BatchNorm on its running averages), so an
  evaluation does not depend on how its split is cut into batches;
* ``"probe"``: the gradient-noise probes, train mode with BatchNorm on its running
  averages: a group's gradient is then the mean of its examples' gradients (the
  estimator's premise), Dropout's noise included, as the optimizer sees it.

Padding rows never enter batch statistics: while ``apply`` runs a batch with a mask,
every ``nnx.BatchNorm`` of the merged copy normalises over the real rows only (NNX's own
``mask`` argument, given for the user's model, which calls ``bn(x)`` without one). So a
padded partial batch updates a BatchNorm model exactly as the unpadded batch does.

``apply`` also notes, while it traces, a BatchNorm in train mode that sees one value per
feature per row (after a dense layer): a batch of one real row gives it zero variance, so
its output would not depend on its input and no gradient would pass below it. The sweep's
pre-check refuses such batch sizes (``min_rows``).
"""

from __future__ import annotations

import contextlib
import contextvars
import functools
import math
from collections.abc import Iterator
from typing import Any

import jax
from flax import nnx

MODES = ("train", "eval", "probe")

_ROWS: contextvars.ContextVar[jax.Array | None] = contextvars.ContextVar("jbatch_rows", default=None)
_NOTES: contextvars.ContextVar[list[str] | None] = contextvars.ContextVar("jbatch_notes", default=None)


def set_mode(model: nnx.Module, mode: str) -> nnx.Module:
    """Sets ``model`` (and every module inside it) to ``mode``, in place; returns it."""
    if mode == "train":
        model.train()
    elif mode == "eval":
        model.eval()
    elif mode == "probe":
        model.train()
        model.set_attributes(use_running_average=True, raise_if_not_found=False)
    else:
        raise ValueError(f"unknown mode {mode!r}; known: {', '.join(MODES)}")
    return model


def apply(
    graphdef: nnx.GraphDef, params: nnx.State, rest: nnx.State, x: jax.Array, mode: str, mask: jax.Array | None = None
) -> tuple[jax.Array, nnx.State]:
    """``model(x)`` in ``mode`` for the model ``(graphdef, params, rest)``; returns the
    outputs and the model's non-parameter state after the call. ``mask`` marks the real
    rows of ``x`` (None: all): BatchNorm's statistics are taken over them alone."""
    model = nnx.merge(graphdef, params, rest, copy=True)  # fresh Variables at this trace level
    set_mode(model, mode)
    for _, module in nnx.iter_modules(model):
        if isinstance(module, nnx.BatchNorm):
            module.__class__ = _row_masked(type(module))  # this copy only: the user's objects are untouched
    token = _ROWS.set(mask)
    try:
        out = model(x)
    finally:
        _ROWS.reset(token)
    _, _, rest = nnx.split(model, nnx.Param, ...)
    return out, rest


@contextlib.contextmanager
def noting() -> Iterator[list[dict[str, Any]]]:
    """Collects what ``apply`` notes while tracing inside the block: for every BatchNorm
    call in train mode, its class, how many values per feature one row gives it, and
    whether the batch's mask reached it (its input's first axis is the batch's rows)."""
    notes: list[dict[str, Any]] = []
    token = _NOTES.set(notes)
    try:
        yield notes
    finally:
        _NOTES.reset(token)


def min_rows(notes: list[dict[str, Any]]) -> int:
    """The fewest real rows a training batch needs, from ``noting``'s notes: 2 when a
    BatchNorm sees one value per feature per row (one row: zero variance), else 1."""
    return 2 if any(n["values_per_row"] == 1 for n in notes) else 1


@functools.cache
def _row_masked(cls: type) -> type:
    """``cls`` (an ``nnx.BatchNorm``) whose statistics skip the rows masked out by ``apply``."""

    def __call__(self, x, use_running_average=None, *, mask=None):
        running = use_running_average if use_running_average is not None else self.use_running_average
        if not running:
            rows = _ROWS.get()
            fits = rows is not None and x.shape[:1] == rows.shape
            if mask is None and fits:
                mask = rows.reshape(rows.shape + (1,) * (x.ndim - 1))
            notes = _NOTES.get()
            if notes is not None:
                axes = {a % x.ndim for a in (self.axis if isinstance(self.axis, tuple) else (self.axis,))}
                per_row = math.prod(n for i, n in enumerate(x.shape) if i and i not in axes)
                notes.append({"layer": cls.__name__, "values_per_row": per_row, "rows_masked": rows is None or fits})
        return cls.__call__(self, x, use_running_average, mask=mask)

    return type(f"RowMasked{cls.__name__}", (cls,), {"__call__": __call__, "__module__": __name__})
