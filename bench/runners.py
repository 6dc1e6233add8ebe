"""Throughput workloads and jbatch's own runners for the pytest-benchmark suite (``bench/``).

A runner is one blocking call that trains on a known number of samples: jbatch's
scan-fused epoch, its jitted step called once per batch, K vmapped replicas, and the
plain ``lax.scan`` baseline the fused epoch is measured against. Peers (Flax NNX loop,
Keras, PyTorch) live in ``bench/peers.py`` and use the same workloads and initial weights.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx

from bench.workloads import LEARNING_RATE, MOMENTUM, MLPWorkload, Runner, Weights, device_data, epoch_runner
from jbatch.core.batching import epoch_order, resolve_batch_size, steps_per_epoch
from jbatch.core.engine import compile_program, fast_unroll, replica_group
from jbatch.core.epoch import make_epoch
from jbatch.core.loss import softmax_cross_entropy
from jbatch.core.optim import make_optimizer
from jbatch.core.replica import init_replicas, replica_orders
from jbatch.core.step import Batch, init_train_state, make_train_step


def mlp_weights(params: Any) -> Weights:
    """``(kernel, bias)`` per layer of jbatch's MLP parameters (an ``nnx.State``), in order."""
    layers = [*(params["hidden"][i] for i in sorted(params["hidden"])), params["out"]]
    return [(np.asarray(layer["kernel"][...]), np.asarray(layer["bias"][...])) for layer in layers]


def mlp_loss(weights: Weights, x: np.ndarray, y: np.ndarray) -> float:
    """Mean softmax cross-entropy of a ReLU MLP given by ``weights``, in float64 NumPy: an
    implementation-independent referee for the peers' equivalence check."""
    h = x.astype(np.float64)
    for i, (k, b) in enumerate(weights):
        h = h @ k.astype(np.float64) + b.astype(np.float64)
        if i < len(weights) - 1:
            h = np.maximum(h, 0)
    h = h - h.max(1, keepdims=True)
    logp = h - np.log(np.exp(h).sum(1, keepdims=True))
    return float(-logp[np.arange(len(y)), y].mean())


def jbatch_epoch(wl: MLPWorkload, batch_size: int | str | None, replicas: int = 1) -> Runner:
    """jbatch's scan-fused epoch (tuned unroll, jbatch's compile options); with
    ``replicas=K``, K replicas (different seeds) in one program, grouped as
    ``engine.replica_group`` says."""
    n = wl.num_examples
    b = resolve_batch_size(batch_size, n)
    tx = optax.inject_hyperparams(optax.sgd)(learning_rate=LEARNING_RATE, momentum=MOMENTUM)
    epoch = make_epoch(make_train_step(softmax_cross_entropy), n, b, unroll=fast_unroll(b))
    data = device_data(wl)
    seeds = list(range(replicas))
    if replicas == 1:
        state = init_train_state(wl.model(0), tx)
        order = jax.device_put(epoch_order(0, 0, n))
        program = compile_program(epoch, state, data, order, donate_argnums=(0,))
    else:
        state = init_replicas(wl.model, tx, seeds, [LEARNING_RATE] * replicas)
        order = jax.device_put(replica_orders(seeds, 0, n))
        program = compile_program(
            epoch, state, data, order, in_axes=(0, None, 0), donate_argnums=(0,), replica_batch=replica_group(b)
        )
    box = {"state": state, "epoch": 0}

    def run() -> Any:
        box["state"], metrics = program(box["state"], data, order)
        return jax.block_until_ready(metrics)  # sync point: a round ends when its work is done

    return Runner(run, replicas * n, steps_per_epoch(n, b), program.compile_seconds, memory=program.memory)


def jbatch_step_loop(wl: MLPWorkload, batch_size: int | str | None, samples: int) -> Runner:
    """jbatch's jitted step called once per batch from Python, over ``samples`` examples."""
    n = wl.num_examples
    b = resolve_batch_size(batch_size, n)
    steps = max(1, samples // b)
    state = init_train_state(wl.model(0), make_optimizer("momentum", LEARNING_RATE))
    x, y = device_data(wl)
    order = jax.device_put(epoch_order(0, 0, n))
    idx = [order[(i * b) % n : (i * b) % n + b] for i in range(steps)]
    batches = [Batch(x[i], y[i]) for i in idx]  # cut before timing, as a data loader would
    program = compile_program(make_train_step(softmax_cross_entropy), state, batches[0], donate_argnums=(0,))
    box = {"state": state}

    def run() -> Any:
        s = box["state"]
        for batch in batches:
            s, metrics = program(s, batch)
        box["state"] = s
        return jax.block_until_ready(metrics)

    return Runner(
        run, steps * b, steps, program.compile_seconds, lambda: mlp_weights(box["state"].params), program.memory
    )


def plain_scan(wl: MLPWorkload, batch_size: int | str | None) -> Runner:
    """The baseline: a hand-written pure-JAX MLP step in a plain ``lax.scan`` (unroll 1,
    default compile options), gathering each batch by index. What a newcomer writes."""
    n = wl.num_examples
    b = resolve_batch_size(batch_size, n)
    steps = n // b
    tx = optax.sgd(LEARNING_RATE, momentum=MOMENTUM)
    params = [{"w": jnp.asarray(w), "b": jnp.asarray(c)} for w, c in wl.weights(0)]
    x, y = device_data(wl)

    def forward(p, xb):
        for layer in p[:-1]:
            xb = jax.nn.relu(xb @ layer["w"] + layer["b"])
        return xb @ p[-1]["w"] + p[-1]["b"]

    def epoch(carry, order):
        def body(c, i):
            p, o = c
            loss, g = jax.value_and_grad(
                lambda p: optax.softmax_cross_entropy_with_integer_labels(forward(p, x[i]), y[i]).mean()
            )(p)
            u, o = tx.update(g, o, p)
            return (optax.apply_updates(p, u), o), loss

        return jax.lax.scan(body, carry, order[: steps * b].reshape(steps, b))

    order = jax.device_put(epoch_order(0, 0, n))
    carry = (params, tx.init(params))
    program = compile_program(epoch, carry, order, donate_argnums=(0,), compiler_options={})  # XLA's defaults
    box = {"carry": carry}

    def run() -> Any:
        box["carry"], losses = program(box["carry"], order)
        return jax.block_until_ready(losses)

    return Runner(run, steps * b, steps, program.compile_seconds, memory=program.memory)


@dataclasses.dataclass(frozen=True)
class LanguageWorkload:
    """The transformer on the ``markov`` language: token sequences, next-token targets."""

    name: str
    x: np.ndarray
    y: np.ndarray
    vocab: int
    shape: tuple[int, int, int]  # width, depth, heads

    @property
    def num_examples(self) -> int:
        return int(self.x.shape[0])

    @property
    def tokens_per_example(self) -> int:
        return int(self.x.shape[1])

    @property
    def flops_per_example(self) -> float:
        from jbatch.workloads.transformer import flops_per_token

        width, depth, _ = self.shape
        return self.tokens_per_example * flops_per_token(self.vocab, self.tokens_per_example, width, depth)

    def model(self, seed: int = 0) -> nnx.Module:
        from jbatch.workloads.transformer import make_transformer

        return make_transformer(self.vocab, self.tokens_per_example, *self.shape)(seed)


def make_language_workload(name: str = "markov") -> LanguageWorkload:
    """The transformer (``TRANSFORMERS["transformer"]``) on jbatch's default Markov language."""
    from jbatch.workloads.catalog import load_dataset
    from jbatch.workloads.workload import TRANSFORMERS

    ds = load_dataset(name)
    return LanguageWorkload(name, ds.x_train, ds.y_train, ds.outputs, TRANSFORMERS["transformer"])


def language_epoch(wl: LanguageWorkload, batch_size: int | str | None) -> Runner:
    """jbatch's scan-fused epoch of the transformer (Adam, as language models train)."""
    n = wl.num_examples
    b = resolve_batch_size(batch_size, n)
    epoch = make_epoch(make_train_step(softmax_cross_entropy), n, b, unroll=fast_unroll(b))
    state = init_train_state(wl.model(0), make_optimizer("adam", 1e-3))
    data = device_data(wl)
    order = jax.device_put(epoch_order(0, 0, n))
    return epoch_runner(epoch, state, data, order, n, b)
