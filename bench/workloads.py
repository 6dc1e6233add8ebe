"""The MLP throughput workloads of the benchmarks: an MLP shape and its float32 data, the
model with jbatch's initialisation and its weights as NumPy arrays (the peers copy them),
a compiled epoch as a ``Runner``, and the machine's float32 matmul peak."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from jbatch.core.batching import steps_per_epoch
from jbatch.core.engine import compile_program
from jbatch.workloads.data import load_digits
from jbatch.workloads.model import make_model

LEARNING_RATE, MOMENTUM = 0.01, 0.9  # SGD with momentum, float32, for every method
Weights = list[tuple[np.ndarray, np.ndarray]]  # (kernel [in, out], bias) per layer


@dataclasses.dataclass(frozen=True)
class MLPWorkload:
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


def make_workload(name: str) -> MLPWorkload:
    """``digits``: MLP 64-256-256-10 on scikit-learn digits tiled to 16,384 samples;
    ``wide``: MLP 784-1024-1024-10 on 8,192 synthetic samples (compute-bound)."""
    if name == "digits":
        ds = load_digits()
        reps = -(-16384 // ds.num_train)
        return MLPWorkload(
            "digits", (64, 256, 256, 10), np.tile(ds.x_train, (reps, 1))[:16384], np.tile(ds.y_train, reps)[:16384]
        )
    if name == "wide":
        rng = np.random.default_rng(0)
        x = rng.standard_normal((8192, 784)).astype(np.float32)
        teacher = rng.standard_normal((784, 10)).astype(np.float32)
        return MLPWorkload("wide", (784, 1024, 1024, 10), x, np.argmax(x @ teacher, 1).astype(np.int32))
    raise ValueError(f"unknown workload {name!r}; known: digits, wide")


@dataclasses.dataclass
class Runner:
    """One blocking call of ``run`` trains on ``samples`` examples in ``steps`` updates;
    ``weights()`` reads the model's current weights (to check that methods train alike);
    ``memory``: XLA's plan of the compiled program, where jbatch compiled one."""

    run: Callable[[], Any]
    samples: int
    steps: int
    compile_seconds: float
    weights: Callable[[], Weights] | None = None
    memory: dict[str, int] | None = None  # XLA's plan of jbatch's compiled program (engine.memory_of)


def device_data(wl: MLPWorkload) -> tuple[jax.Array, jax.Array]:
    return jax.device_put(wl.x), jax.device_put(wl.y)


def epoch_runner(epoch: Callable[..., Any], state: Any, data: Any, order: Any, n: int, b: int) -> Runner:
    """A compiled whole epoch (state donated), one call per round."""
    program = compile_program(epoch, state, data, order, donate_argnums=(0,))
    box = {"state": state}

    def run() -> Any:
        box["state"], metrics = program(box["state"], data, order)
        return jax.block_until_ready(metrics)

    return Runner(run, n, steps_per_epoch(n, b), program.compile_seconds)


def matmul_peak_gflops(n: int = 2048, repeats: int = 10) -> float:
    """The float32 matmul rate jax reaches here: best of ``repeats`` ``n x n @ n x n``."""
    a = jnp.asarray(np.random.default_rng(0).standard_normal((n, n)), jnp.float32)
    f = compile_program(lambda m: m @ m, a)
    jax.block_until_ready(f(a))
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        jax.block_until_ready(f(a))  # sync point: the clock is read after the result exists
        best = min(best, time.perf_counter() - start)
    return 2 * n**3 / best / 1e9
