"""Host-side bookkeeping of a batch size's run: which replicas still need the fine
evaluations (``Watch``), and what the run recorded (``Recorder``): evaluation points, the
per-epoch examples and updates the program counted, and the result document.
"""

from __future__ import annotations

import math
from typing import Any

import jax
import numpy as np

from jbatch.results.records import Counted, Curve, Replica
from jbatch.sweeps.cadence import Layout


class Watch:
    """Which replicas still need the target's split evaluated at every fine point.

    Not those that reached the target (their steps to target are known) or diverged, and
    not those of a learning rate that can no longer be the best: once some learning rate
    has every seed at the target (mean ``S*`` steps), another whose unreached seeds would
    need, even reaching it right now, more than ``S*`` steps on average can neither reach
    it with more seeds nor in fewer steps (``selection.rank``); an extension
    round of the grid starts from the best of the earlier rounds (``bound``). Such replicas
    are still evaluated at the coarse points; ``pruned_at`` records when they stopped, so a
    target they reach later is known to the coarse resolution only (and the report says so
    should one of them end up the best, which takes a best whose runs blow up later).
    """

    def __init__(self, grid, metric: str, target: float, higher: bool, prune: bool = True, bound: float = math.inf):
        keys = [tuple(sorted(h.items())) for h, _ in grid]  # a setting: the swept hyperparameters' values
        self.lrs = np.asarray([sorted(set(keys)).index(k) for k in keys])
        self.metric, self.target, self.higher, self.prune = metric, target, higher, prune
        self.reached_at = np.full(len(grid), -1)
        self.pruned_at: list[int | None] = [None] * len(grid)
        self.prior = bound  # the best mean steps of an earlier round at this batch size (an extension)

    @property
    def best(self) -> float:
        """The fewest mean steps to target of a setting whose every seed reached it (this
        round's or the earlier rounds'); infinite while there is none."""
        done = [lr for lr in set(self.lrs) if np.all(self.reached_at[self.lrs == lr] >= 0)]
        return min([self.prior] + [float(np.mean(self.reached_at[self.lrs == lr])) for lr in done])

    def need(self, diverged: np.ndarray) -> np.ndarray:
        return (self.reached_at < 0) & ~diverged & np.asarray([p is None for p in self.pruned_at])

    def update(self, step: int, metrics: dict[str, Any], evaluated: np.ndarray, diverged: np.ndarray) -> None:
        value = np.asarray(metrics[self.metric], float)
        with np.errstate(invalid="ignore"):
            hit = evaluated & ~diverged & ((value >= self.target) if self.higher else (value <= self.target))
        self.reached_at[hit & (self.reached_at < 0)] = step
        best = self.best
        if not self.prune or best == math.inf:
            return
        for lr in set(self.lrs):
            group = self.lrs == lr
            if np.all(self.reached_at[group] >= 0):
                continue
            bound = np.where(self.reached_at[group] >= 0, self.reached_at[group], step).mean()
            if bound > best:
                for r in np.flatnonzero(group & (self.reached_at < 0)):
                    if self.pruned_at[r] is None:
                        self.pruned_at[r] = step


class Recorder:
    """Host-side bookkeeping of one batch size's run: fine and coarse evaluation points
    (with the training loss on a fixed sample at the fine ones), the per-epoch examples and
    updates the program counted, and each replica's mini-batch loss means."""

    def __init__(self, replicas: int, lay: Layout, fine_split: str, coarse_split: str):
        self.lay, self.fine_split, self.coarse_split = lay, fine_split, coarse_split
        self.fine_points: list[dict[str, Any]] = []
        self.coarse_points: list[dict[str, Any]] = []
        self.losses: list[np.ndarray] = []  # per-step losses since the last fine point
        self.steps_done = 0
        epochs = lay.epochs
        self.examples = np.zeros(epochs, np.int64)  # masks are shared: every live replica counts the same
        self.updates = np.zeros((epochs, replicas), np.int64)  # update counter at each epoch's end
        self.diverged = np.zeros(replicas, bool)  # as of the last chunk (exploded, not yet set back)
        self.replicas = replicas

    def chunk(self, c: int, out: dict[str, Any], active: np.ndarray) -> None:
        self.steps_done += int(active.sum())
        epoch = self.lay.chunks[c][0]
        self.examples[epoch] += int(round(float(np.max(out["examples"]))))  # a diverged replica skips (0)
        self.updates[epoch] = out["updates"]
        self.diverged = np.asarray(out["diverged"], bool)
        self.losses.append(np.asarray(out["loss"], float)[:, active])

    def fine(self, step: int, metrics: dict[str, Any], sample: Any = None) -> None:
        """A fine point: the target split's ``metrics`` and the training loss on the fixed
        sample (``sample``, None where not evaluated), with the mean mini-batch loss since
        the previous point."""
        losses = np.concatenate(self.losses, axis=1) if self.losses else np.full((self.replicas, 1), np.nan)
        self.losses.clear()
        with np.errstate(over="ignore", invalid="ignore"):  # a frozen replica's losses are NaN
            minibatch = losses.mean(axis=1)
        self.fine_points.append(
            {
                "step": step,
                "metrics": jax.device_get(metrics),
                "minibatch": minibatch,
                "sample": None if sample is None else np.asarray(sample),
            }
        )

    def coarse(self, step: int, metrics: dict[str, Any]) -> None:
        self.coarse_points.append({"step": step, "metrics": jax.device_get(metrics)})

    def counted(self, guard: Any) -> Counted:
        """What the compiled program counted per epoch: the loss terms of real examples used
        (``examples_per_epoch``: examples, or tokens for a sequence loss; ``selection.counted_examples``
        turns them into examples), and updates
        (the step counter's increase) of every replica that never diverged, as the distinct
        values they took (one value when they all agree)."""
        stable = ~np.asarray(guard.diverged)
        ends = self.updates[:, stable]
        per_epoch = np.diff(np.concatenate([np.zeros((1, ends.shape[1]), np.int64), ends]), axis=0)
        return Counted(
            examples_per_epoch=self.examples.tolist(),
            updates_per_epoch=[sorted(set(row.tolist())) for row in per_epoch],
        )


def rounded(v: float) -> float | None:
    """Six significant digits (float32 carries about seven, and the document stays small);
    None for a value not measured (a skipped evaluation) or not finite, as JSON stores it."""
    v = float(v)
    return float(f"{v:.6g}") if math.isfinite(v) else None


def _curve(points: list[dict[str, Any]], split: str, r: int, spe: int) -> Curve:
    steps = [p["step"] for p in points]
    metrics = {
        f"{split}_{metric}": [rounded(p["metrics"][metric][r]) for p in points]
        for metric in (points[0]["metrics"] if points else ())
    }  # a replay records no coarse points
    return Curve(step=steps, epoch=[s / spe for s in steps], **metrics)


def replicas(grid: list, values: list[dict[str, float]], record: Recorder, guard: Any, lay: Layout) -> list[Replica]:
    """The result's record of each replica slot: its swept values (``grid``: (values, seed)),
    every injected value, its fine and coarse curves and whether (and where) it diverged."""
    spe = lay.steps_per_epoch
    out = []
    for r, ((hyper, seed), injected) in enumerate(zip(grid, values, strict=True)):
        curve = _curve(record.fine_points, record.fine_split, r, spe)
        curve.minibatch_loss = [rounded(p["minibatch"][r]) for p in record.fine_points]
        if any(p["sample"] is not None for p in record.fine_points):
            curve.sample_loss = [None if p["sample"] is None else rounded(p["sample"][r]) for p in record.fine_points]
        diverged = bool(guard.diverged[r])
        out.append(
            Replica(
                learning_rate=hyper["learning_rate"],
                hyperparameters=injected,
                swept=sorted(hyper),
                seed=seed,
                curve=curve,
                coarse=_curve(record.coarse_points, record.coarse_split, r, spe),
                diverged=diverged,
                diverged_at_step=int(guard.step[r]) if diverged else None,
            )
        )
    return out
