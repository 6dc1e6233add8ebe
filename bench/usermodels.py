"""Models as users write them, for the advice cases beyond jbatch's own workloads (issue 33's
table against the batch-size finders): a GRU (``nnx.RNN``) and a 1-D CNN with BatchNorm, both on
MNIST-1D's sequences of 40 values (``--dataset mnist1d:N``). Each class takes a seed, so its
import path is the model factory: ``--model bench.usermodels:GRU``."""

from __future__ import annotations

import jax
from flax import nnx


class GRU(nnx.Module):
    """A GRU over the sequence, read out at its last step (the MNIST-1D paper's GRU reaches 91%)."""

    def __init__(self, seed: int, hidden: int = 64):
        rngs = nnx.Rngs(seed)
        self.rnn = nnx.RNN(nnx.GRUCell(1, hidden, rngs=rngs), rngs=rngs)
        self.out = nnx.Linear(hidden, 10, rngs=rngs)

    def __call__(self, x: jax.Array) -> jax.Array:
        return self.out(self.rnn(x[..., None])[:, -1])


class BatchNormCNN(nnx.Module):
    """Two 1-D convolutions, each with BatchNorm, pooled over the sequence and read out."""

    def __init__(self, seed: int, channels: int = 32):
        rngs = nnx.Rngs(seed)
        self.conv1 = nnx.Conv(1, channels, kernel_size=(5,), rngs=rngs)
        self.norm1 = nnx.BatchNorm(channels, rngs=rngs)
        self.conv2 = nnx.Conv(channels, channels, kernel_size=(5,), rngs=rngs)
        self.norm2 = nnx.BatchNorm(channels, rngs=rngs)
        self.out = nnx.Linear(channels, 10, rngs=rngs)

    def __call__(self, x: jax.Array) -> jax.Array:
        h = jax.nn.relu(self.norm1(self.conv1(x[..., None])))
        h = jax.nn.relu(self.norm2(self.conv2(h)))
        return self.out(h.mean(axis=1))
