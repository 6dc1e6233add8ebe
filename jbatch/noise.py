"""The gradient noise scale ``B_simple = tr(Sigma) / |G|^2`` (McCandlish et al. 2018).

``G`` is the mean gradient over the training set and ``Sigma`` the covariance of the
per-example gradients. On data sets that fit, both are computed exactly from per-example
gradients (``jax.vmap`` of ``jax.grad``, summed chunk by chunk so memory stays small).
For larger ones, ``two_batch_estimate`` gives unbiased estimates from the squared norms of
two mini-batch gradients of sizes ``b < B``: ``E|g_B|^2 = |G|^2 + tr(Sigma) / B``.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp

from jbatch.batching import epoch_batches
from jbatch.loss import LossFn
from jbatch.step import TrainState


def _sq_norm(tree: Any) -> jax.Array:
    return sum(jnp.sum(jnp.square(leaf)) for leaf in jax.tree.leaves(tree))


def gradient_moments(
    state: TrainState, data: tuple[jax.Array, jax.Array], loss_fn: LossFn, chunk: int = 64
) -> dict[str, jax.Array]:
    """Exact ``|G|^2``, ``tr(Sigma)`` (unbiased, ``N - 1``) and ``B_simple`` over ``data``.

    Traceable and pure: a sweep calls it inside its compiled program. The per-example
    loss is the training loss of a batch of one, so ``G`` is the full-batch gradient.

    Example:
      >>> import optax
      >>> from jbatch.model import make_model
      >>> from jbatch.loss import mean_squared_error
      >>> from jbatch.step import init_train_state
      >>> s = init_train_state(make_model("linear", 2, 1), optax.sgd(0.1))
      >>> x = jnp.array([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]]); y = jnp.array([[1.0], [2.0], [0.0]])
      >>> m = jax.jit(lambda s: gradient_moments(s, (x, y), mean_squared_error))(s)
      >>> sorted(m)
      ['b_simple', 'grad_sq', 'trace_sigma']
    """
    x, y = data
    n = x.shape[0]
    c = min(chunk, n)
    idx, mask = epoch_batches(jnp.arange(n), c, "keep")

    def example_loss(params, xi, yi):
        model_out = state.replace(params=params).model()(xi[None])
        return loss_fn(model_out, yi[None], None).mean()

    per_example_grad = jax.vmap(jax.grad(example_loss), in_axes=(None, 0, 0))

    def body(acc, batch):
        i, m = batch
        grads = per_example_grad(state.params, x[i], y[i])
        w = m.astype(x.dtype)
        summed = jax.tree.map(lambda g: jnp.tensordot(w, g, axes=1), grads)
        sq = jnp.sum(w * jax.vmap(_sq_norm)(grads))
        return (jax.tree.map(jnp.add, acc[0], summed), acc[1] + sq), None

    zero = (jax.tree.map(jnp.zeros_like, state.params), jnp.zeros((), x.dtype))
    (total, total_sq), _ = jax.lax.scan(body, zero, (idx, mask))
    grad_sq = _sq_norm(total) / n**2
    trace_sigma = (total_sq / n - grad_sq) * n / (n - 1)
    return {"grad_sq": grad_sq, "trace_sigma": trace_sigma, "b_simple": trace_sigma / grad_sq}


def two_batch_estimate(small_sq: Any, big_sq: Any, b: int, big: int) -> dict[str, Any]:
    """Unbiased ``|G|^2`` and ``tr(Sigma)`` from ``|g_b|^2`` and ``|g_B|^2`` (CLAIMS.md):
    ``|G|^2 ~ (B|g_B|^2 - b|g_b|^2) / (B - b)``, ``tr(Sigma) ~ (|g_b|^2 - |g_B|^2) / (1/b - 1/B)``.
    Their ratio is ``B_simple``; average the two estimates over many draws before dividing.

    Example:
      >>> e = two_batch_estimate(small_sq=3.0, big_sq=1.2, b=1, big=10)
      >>> round(e["grad_sq"], 6), round(e["trace_sigma"], 6)
      (1.0, 2.0)
    """
    if not 0 < b < big:
        raise ValueError(f"need 0 < b < B, got b={b}, B={big}")
    grad_sq = (big * big_sq - b * small_sq) / (big - b)
    trace_sigma = (small_sq - big_sq) / (1 / b - 1 / big)
    return {"grad_sq": grad_sq, "trace_sigma": trace_sigma}
