"""Throughput workloads and jbatch's own runners for the pytest-benchmark suite (``bench/``).

A runner is one blocking call that trains on a known number of samples: jbatch's
scan-fused epoch, its jitted step called once per batch, K vmapped replicas, and the
plain ``lax.scan`` baseline the fused epoch is measured against. Peers (Flax NNX loop,
Keras, PyTorch) live in ``bench/peers.py`` and use the same workloads and initial weights.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx

from jbatch.batching import epoch_order, resolve_batch_size, steps_per_epoch
from jbatch.engine import compile_program, fast_unroll, replica_group
from jbatch.epoch import make_epoch
from jbatch.loss import softmax_cross_entropy
from jbatch.model import make_model
from jbatch.optim import make_optimizer
from jbatch.replica import init_replicas, replica_orders
from jbatch.step import Batch, init_train_state, make_train_step

LEARNING_RATE, MOMENTUM = 0.01, 0.9  # SGD with momentum, float32, for every method


@dataclasses.dataclass(frozen=True)
class Workload:
    """An MLP shape and its float32 data: ``sizes = (inputs, hidden..., classes)``."""

    name: str
    sizes: tuple[int, ...]
    x: np.ndarray
    y: np.ndarray

    @property
    def num_examples(self) -> int:
        return int(self.x.shape[0])

    @property
    def flops_per_example(self) -> int:
        """Model FLOPs of one training example: 2 (forward) + 4 (backward) per weight."""
        return 6 * sum(a * b for a, b in zip(self.sizes[:-1], self.sizes[1:], strict=False))

    def model(self, seed: int = 0) -> nnx.Module:
        """The workload's MLP with jbatch's initialisation; peers copy these weights."""
        return make_model("mlp", self.sizes[0], self.sizes[-1], widths=self.sizes[1:-1], seed=seed)

    def weights(self, seed: int = 0) -> list[tuple[np.ndarray, np.ndarray]]:
        """Initial ``(kernel [in, out], bias)`` per layer, as NumPy arrays."""
        m = self.model(seed)
        layers = [*m.hidden, m.out]
        return [(np.asarray(layer.kernel[...]), np.asarray(layer.bias[...])) for layer in layers]


def make_workload(name: str) -> Workload:
    """``digits``: MLP 64-256-256-10 on scikit-learn digits tiled to 16,384 samples;
    ``wide``: MLP 784-1024-1024-10 on 8,192 synthetic samples (compute-bound)."""
    if name == "digits":
        from jbatch.data import load_digits

        ds = load_digits()
        reps = -(-16384 // ds.num_train)
        return Workload("digits", (64, 256, 256, 10), np.tile(ds.x_train, (reps, 1))[:16384],
                        np.tile(ds.y_train, reps)[:16384])  # fmt: skip
    if name == "wide":
        rng = np.random.default_rng(0)
        x = rng.standard_normal((8192, 784)).astype(np.float32)
        teacher = rng.standard_normal((784, 10)).astype(np.float32)
        return Workload("wide", (784, 1024, 1024, 10), x, np.argmax(x @ teacher, 1).astype(np.int32))
    raise ValueError(f"unknown workload {name!r}; known: digits, wide")


def mfu(samples_per_second: float, flops_per_example: float, peak_gflops: float) -> float:
    """Model-FLOP utilisation: the model FLOPs a run performs per second over a peak rate.

    Example:
      >>> mfu(1000.0, 2e6, 4.0)  # 2 GFLOP/s of model work against a 4 GFLOP/s peak
      0.5
    """
    return samples_per_second * flops_per_example / 1e9 / peak_gflops


def matmul_peak_gflops(n: int = 2048, repeats: int = 10) -> float:
    """The float32 matmul rate jax reaches here: best of ``repeats`` ``n x n @ n x n``."""
    a = jnp.asarray(np.random.default_rng(0).standard_normal((n, n)), jnp.float32)
    f = jax.jit(lambda m: m @ m)
    jax.block_until_ready(f(a))
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        jax.block_until_ready(f(a))  # sync point: the clock is read after the result exists
        best = min(best, time.perf_counter() - start)
    return 2 * n**3 / best / 1e9


Weights = list[tuple[np.ndarray, np.ndarray]]  # (kernel [in, out], bias) per layer


@dataclasses.dataclass
class Runner:
    """One blocking call of ``run`` trains on ``samples`` examples in ``steps`` updates;
    ``weights()`` reads the model's current weights (to check that methods train alike)."""

    run: Callable[[], Any]
    samples: int
    steps: int
    compile_seconds: float
    weights: Callable[[], Weights] | None = None


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


def _device_data(wl: Workload) -> tuple[jax.Array, jax.Array]:
    return jax.device_put(wl.x), jax.device_put(wl.y)


def jbatch_epoch(wl: Workload, batch_size: int | str | None, replicas: int = 1) -> Runner:
    """jbatch's scan-fused epoch (tuned unroll, jbatch's compile options); with
    ``replicas=K``, K replicas (different seeds) in one program, grouped as
    ``engine.replica_group`` says."""
    n = wl.num_examples
    b = resolve_batch_size(batch_size, n)
    tx = optax.inject_hyperparams(optax.sgd)(learning_rate=LEARNING_RATE, momentum=MOMENTUM)
    epoch = make_epoch(make_train_step(softmax_cross_entropy), n, b, unroll=fast_unroll(b))
    data = _device_data(wl)
    seeds = list(range(replicas))
    if replicas == 1:
        state = init_train_state(wl.model(0), tx)
        order = jax.device_put(epoch_order(0, 0, n))
        program = compile_program(epoch, state, data, order, donate_argnums=(0,))
    else:
        state = init_replicas(wl.model, tx, seeds, [LEARNING_RATE] * replicas)
        order = jax.device_put(replica_orders(seeds, 0, n))
        program = compile_program(epoch, state, data, order, in_axes=(0, None, 0), donate_argnums=(0,),
                                  replica_batch=replica_group(b))  # fmt: skip
    box = {"state": state, "epoch": 0}

    def run() -> Any:
        box["state"], metrics = program(box["state"], data, order)
        return jax.block_until_ready(metrics)  # sync point: a round ends when its work is done

    return Runner(run, replicas * n, steps_per_epoch(n, b), program.compile_seconds)


def jbatch_step_loop(wl: Workload, batch_size: int | str | None, samples: int) -> Runner:
    """jbatch's jitted step called once per batch from Python, over ``samples`` examples."""
    n = wl.num_examples
    b = resolve_batch_size(batch_size, n)
    steps = max(1, samples // b)
    state = init_train_state(wl.model(0), make_optimizer("momentum", LEARNING_RATE))
    x, y = _device_data(wl)
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

    return Runner(run, steps * b, steps, program.compile_seconds, lambda: mlp_weights(box["state"].params))


def plain_scan(wl: Workload, batch_size: int | str | None) -> Runner:
    """The baseline: a hand-written pure-JAX MLP step in a plain ``lax.scan`` (unroll 1,
    default compile options), gathering each batch by index. What a newcomer writes."""
    n = wl.num_examples
    b = resolve_batch_size(batch_size, n)
    steps = n // b
    tx = optax.sgd(LEARNING_RATE, momentum=MOMENTUM)
    params = [{"w": jnp.asarray(w), "b": jnp.asarray(c)} for w, c in wl.weights(0)]
    x, y = _device_data(wl)

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

    return Runner(run, steps * b, steps, program.compile_seconds)


def _epoch_runner(epoch: Callable[..., Any], state: Any, data: Any, order: Any, n: int, b: int) -> Runner:
    """A compiled whole epoch (state donated), one call per round."""
    program = compile_program(epoch, state, data, order, donate_argnums=(0,))
    box = {"state": state}

    def run() -> Any:
        box["state"], metrics = program(box["state"], data, order)
        return jax.block_until_ready(metrics)

    return Runner(run, n, steps_per_epoch(n, b), program.compile_seconds)


def sharded_epoch(wl: Workload, batch_size: int | str | None, devices: int) -> Runner:
    """jbatch's scan-fused epoch, data parallel over the first ``devices`` local devices
    (``jbatch.parallel``): ``batch_size`` is the global batch."""
    from jbatch.parallel import batch_sharding, data_mesh, padded_width, place

    n = wl.num_examples
    b = resolve_batch_size(batch_size, n)
    mesh = data_mesh(jax.local_devices()[:devices])
    tx = optax.inject_hyperparams(optax.sgd)(learning_rate=LEARNING_RATE, momentum=MOMENTUM)
    epoch = make_epoch(make_train_step(softmax_cross_entropy), n, b, unroll=fast_unroll(b),
                       sharding=batch_sharding(mesh), width=padded_width(b, mesh))  # fmt: skip
    state, data = place(init_train_state(wl.model(0), tx), mesh), place(_device_data(wl), mesh)
    order = place(epoch_order(0, 0, n), mesh)
    return _epoch_runner(epoch, state, data, order, n, b)


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
        from jbatch.transformer import flops_per_token

        width, depth, _ = self.shape
        return self.tokens_per_example * flops_per_token(self.vocab, self.tokens_per_example, width, depth)

    def model(self, seed: int = 0) -> nnx.Module:
        from jbatch.transformer import make_transformer

        return make_transformer(self.vocab, self.tokens_per_example, *self.shape)(seed)


def make_language_workload(name: str = "markov") -> LanguageWorkload:
    """The transformer (``TRANSFORMERS["transformer"]``) on jbatch's default Markov language."""
    from jbatch.data import load_dataset
    from jbatch.workload import TRANSFORMERS

    ds = load_dataset(name)
    return LanguageWorkload(name, ds.x_train, ds.y_train, ds.outputs, TRANSFORMERS["transformer"])


def language_epoch(wl: LanguageWorkload, batch_size: int | str | None) -> Runner:
    """jbatch's scan-fused epoch of the transformer (Adam, as language models train)."""
    n = wl.num_examples
    b = resolve_batch_size(batch_size, n)
    epoch = make_epoch(make_train_step(softmax_cross_entropy), n, b, unroll=fast_unroll(b))
    state = init_train_state(wl.model(0), make_optimizer("adam", 1e-3))
    data = _device_data(wl)
    order = jax.device_put(epoch_order(0, 0, n))
    return _epoch_runner(epoch, state, data, order, n, b)
