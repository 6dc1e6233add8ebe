"""The gradient noise scale ``B_simple = tr(Sigma) / |G|^2`` (McCandlish et al. 2018).

``G`` is the mean gradient over the training set and ``Sigma`` the covariance of the
per-example gradients. ``gradient_moments`` estimates both without bias from the spread
of group gradients over a shuffled set (exactly, from per-example gradients, with groups
of one), on the whole training set or a fixed subsample of it.
"""

from __future__ import annotations

import functools
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from jbatch.core.engine import replica_group
from jbatch.core.loss import LossFn, summed
from jbatch.core.modes import apply
from jbatch.core.step import TrainState
from jbatch.results.records import NoiseCurve, NoiseEstimate
from jbatch.sweeps.cadence import fixed_subsample
from jbatch.sweeps.recorder import rounded

UNROLL = 8  # group gradients per loop iteration: on a 2-core CPU the loop's own cost was about a third of a probe


def _sq_norm(tree: Any) -> jax.Array:
    return sum(jnp.sum(jnp.square(leaf)) for leaf in jax.tree.leaves(tree))


def gradient_moments(
    state: TrainState,
    data: tuple[jax.Array, jax.Array],
    loss_fn: LossFn,
    group: int = 1,
    population: bool = True,
    unroll: int = UNROLL,
) -> dict[str, jax.Array]:
    """``|G|^2``, ``tr(Sigma)`` and ``B_simple`` from the gradients of groups of ``group``
    examples of ``data`` (consecutive rows; shuffle them first when ``group`` > 1).

    With ``m`` groups of ``b`` examples and ``s^2`` the sample variance (``m - 1``) of the
    group-mean gradients, ``b s^2`` estimates ``tr(Sigma)`` without bias whatever ``b``:
    over a random partition of a finite set, ``E[s^2] = tr(Sigma) / b`` exactly, with
    ``Sigma`` the set's per-example covariance (``n - 1``). ``group=1`` is the exact
    per-example computation; larger groups cost ``m`` batch gradients instead of ``n``
    per-example ones (which XLA's CPU backend materialises slowly), for more sampling noise.
    Rows beyond ``m b`` are left out. The model runs in the probe mode of ``jbatch.core.modes``:
    Dropout as in training (its RNG state carried from group to group), BatchNorm on its
    running averages, so that a group's gradient is the mean of its examples' gradients.

    ``G`` is the gradient of the mean loss over every row of ``data`` (from the same pass:
    the group gradients weighted by their rows, plus the rows left out). ``population``:
    ``data`` is the whole training set, so that is ``G`` exactly. Otherwise (a subsample)
    its squared norm overestimates ``|G|^2`` by ``tr(Sigma) / n`` on average, which is
    subtracted. ``unroll``: group gradients per loop iteration (faster probes, longer
    compilation). Traceable and pure.

    Examples:
      >>> import optax
      >>> from jbatch.workloads.model import make_model
      >>> from jbatch.core.loss import mean_squared_error
      >>> from jbatch.core.step import init_train_state
      >>> s = init_train_state(make_model("linear", 2, 1), optax.sgd(0.1))
      >>> x = jnp.array([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]]); y = jnp.array([[1.0], [2.0], [0.0]])
      >>> m = gradient_moments(s, (x, y), mean_squared_error)
      >>> sorted(m)
      ['b_simple', 'grad_sq', 'trace_sigma']
    """
    x, y = data
    n = x.shape[0]
    b = max(1, min(group, n // 2))
    m = n // b
    total_loss = summed(loss_fn)

    def group_loss(params, rest, xg, yg):
        out, rest = apply(state.graphdef, params, rest, xg, "probe")
        return total_loss(out, yg, None).mean(), rest

    grad = jax.grad(group_loss, has_aux=True)

    def body(acc, rows):  # the model's RNG state goes on from group to group: fresh dropout masks each
        g, rest = grad(state.params, acc[2], x[rows], y[rows])
        return (jax.tree.map(jnp.add, acc[0], g), acc[1] + _sq_norm(g), rest), None

    zero = (jax.tree.map(jnp.zeros_like, state.params), jnp.zeros((), jnp.float32), state.rest)  # x: maybe token ids
    groups = jnp.arange(m * b).reshape(m, b)
    (total, total_sq, rest), _ = jax.lax.scan(body, zero, groups, unroll=max(1, min(m, unroll)))
    trace_sigma = b * (total_sq - _sq_norm(total) / m) / (m - 1)
    # G over every row, from the same pass: the groups' mean gradients weighted by their rows,
    # plus the gradient of the r = n - m b rows the groups leave out (no second pass over n)
    full = jax.tree.map(lambda t: t * (b / n), total)
    if r := n - m * b:
        left, _ = grad(state.params, rest, x[m * b :], y[m * b :])
        full = jax.tree.map(lambda f, g: f + g * (r / n), full, left)
    mean_sq = _sq_norm(full)
    grad_sq = mean_sq if population else mean_sq - trace_sigma / n
    return {"grad_sq": grad_sq, "trace_sigma": trace_sigma, "b_simple": trace_sigma / grad_sq}


def probe_replicas(
    session, checkpoints: list[tuple[int, Any]], chosen: list[int], clock
) -> tuple[list[NoiseCurve], NoiseEstimate]:
    """The gradient noise scale of the replicas ``chosen`` at every checkpoint (``(step,
    stacked host states)``), on a fixed shuffled subsample of at most ``noise_examples``
    training examples (all of them, when there are no more), from ``noise_groups`` group
    gradients (``gradient_moments``, unrolled ``noise_unroll`` groups per loop iteration);
    compiled once per sweep (the session's ``engine.Programs``)."""
    m = session.config.measurement
    train = session.train
    n = int(train[0].shape[0])
    rows = fixed_subsample(n, m.noise_examples, seed=1)
    order = np.random.default_rng(2).permutation(n if rows is None else len(rows))  # a random partition into groups
    rows = order if rows is None else rows[order]
    data = tuple(a[rows] for a in train)
    group = max(1, len(rows) // m.noise_groups)
    population = len(rows) == n
    probe = functools.partial(
        gradient_moments, loss_fn=session.workload.loss, group=group, population=population, unroll=m.noise_unroll
    )
    pick = lambda s: jax.tree.map(lambda v: v[np.asarray(chosen)], s)  # noqa: E731  host arrays: no device op
    key = ("probe", session.workload.loss, group, population, m.noise_unroll)
    with clock.compiling():
        program = session.programs.get(
            key, probe, pick(checkpoints[0][1]), data, in_axes=(0, None), replica_batch=replica_group(len(data[0]))
        )
    values = [jax.device_get(clock.call("noise", program, pick(state), data)) for _, state in checkpoints]
    steps = [s for s, _ in checkpoints]
    keys = ("b_simple", "grad_sq", "trace_sigma")
    curves = [
        NoiseCurve(step=steps, **{k: [rounded(v[k][i]) for v in values] for k in keys}) for i in range(len(chosen))
    ]
    return curves, NoiseEstimate(examples=int(data[0].shape[0]), group=group, of=n)
