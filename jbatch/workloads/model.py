"""Flax NNX models jbatch trains: linear/logistic regression, an MLP, and a small 1-D/2-D CNN.

Every model maps a batch ``[B, ...]`` to ``[B, outputs]``, flat or not; the CNN reshapes to the data
set's spatial shape itself, so data sets stay flat and one batching path serves all models.
Any other ``nnx.Module`` works with the training step too; these are the built-in ones.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Sequence

import jax
import jax.numpy as jnp
from flax import nnx

from jbatch.errors import ConfigError


class Linear(nnx.Module):
    """One affine layer: linear regression under MSE, logistic (softmax) regression under
    cross-entropy."""

    def __init__(self, in_features: int, outputs: int, *, rngs: nnx.Rngs):
        self.out = nnx.Linear(in_features, outputs, rngs=rngs)

    def __call__(self, x: jax.Array) -> jax.Array:
        return self.out(x.reshape(x.shape[0], -1))


class MLP(nnx.Module):
    """Fully connected ReLU network with hidden ``widths`` (64-256-256-10 for digits)."""

    def __init__(self, in_features: int, outputs: int, widths: Sequence[int] = (256, 256), *, rngs: nnx.Rngs):
        sizes = [in_features, *widths]
        self.hidden = nnx.List([nnx.Linear(a, b, rngs=rngs) for a, b in zip(sizes[:-1], sizes[1:], strict=True)])
        self.out = nnx.Linear(sizes[-1], outputs, rngs=rngs)

    def __call__(self, x: jax.Array) -> jax.Array:
        x = x.reshape(x.shape[0], -1)  # images or sequences: their features, flattened
        for layer in self.hidden:
            x = jax.nn.relu(layer(x))
        return self.out(x)


class CNN(nnx.Module):
    """Small ConvNet, 1-D for sequences (MNIST-1D, length 40) or 2-D for 8x8 digit images.

    The convolution's rank follows ``spatial_shape``: ``(40,)`` gives 1-D kernels, ``(8, 8)``
    2-D ones. Two 3-wide convolutions (the second with stride 2), then a linear read-out.
    """

    def __init__(
        self,
        in_features: int,
        outputs: int,
        spatial_shape: Sequence[int],
        channels: Sequence[int] = (32, 32),
        *,
        rngs: nnx.Rngs,
    ):
        spatial_shape = tuple(spatial_shape)
        if in_features % math.prod(spatial_shape):
            raise ConfigError(f"CNN: spatial shape {spatial_shape} does not divide {in_features} features")
        self.spatial_shape = spatial_shape
        rank = len(spatial_shape)
        convs, c_in, size = [], in_features // math.prod(spatial_shape), list(spatial_shape)  # channels last
        for i, c_out in enumerate(channels):
            stride = 1 if i == 0 else 2
            convs.append(nnx.Conv(c_in, c_out, kernel_size=(3,) * rank, strides=(stride,) * rank, rngs=rngs))
            size = [-(-s // stride) for s in size]  # "SAME" padding: ceil(s / stride)
            c_in = c_out
        self.convs = nnx.List(convs)
        self.out = nnx.Linear(math.prod(size) * c_in, outputs, rngs=rngs)

    def __call__(self, x: jax.Array) -> jax.Array:
        x = x.reshape(x.shape[0], *self.spatial_shape, -1)  # a channel axis of 1 when the data has none
        for conv in self.convs:
            x = jax.nn.relu(conv_as_matmul(conv, x))
        return self.out(x.reshape(x.shape[0], -1))


def conv_as_matmul(conv: nnx.Conv, x: jax.Array) -> jax.Array:
    """``conv(x)`` ("SAME" padding, any stride) computed as patches @ kernel (im2col).

    Same parameters and same result as ``nnx.Conv``; XLA's CPU backend runs these small
    convolutions (and their gradients) several times faster as one matmul (measured on
    MNIST-1D, B=32: 5x per epoch).
    """
    kernel = conv.kernel[...]
    window = kernel.shape[:-2]
    strides = conv.strides if isinstance(conv.strides, tuple) else (conv.strides,) * len(window)
    pads, outs = [], []
    for size, k, s in zip(x.shape[1:-1], window, strides, strict=True):
        out = -(-size // s)
        total = max((out - 1) * s + k - size, 0)
        pads.append((total // 2, total - total // 2))
        outs.append(out)
    xp = jnp.pad(x, [(0, 0), *pads, (0, 0)])
    columns = []
    for offsets in itertools.product(*(range(k) for k in window)):
        index = tuple(slice(o, o + (n - 1) * s + 1, s) for o, n, s in zip(offsets, outs, strides, strict=True))
        columns.append(xp[(slice(None), *index, slice(None))])
    patches = jnp.concatenate(columns, axis=-1)  # [B, *out, prod(window) * C_in], kernel's order
    y = patches @ kernel.reshape(-1, kernel.shape[-1])
    return y + conv.bias[...] if conv.bias is not None else y


ModelFactory = Callable[..., nnx.Module]

# One explicit table of built-in models; the CLI's --model choices come from here.
# The builders of ``jbatch.config.MODELS``' feed-forward models (the transformers are ``workloads.transformer``'s).
BUILDERS: dict[str, ModelFactory] = {"linear": Linear, "mlp": MLP, "cnn": CNN}


def make_model(
    name: str,
    in_features: int,
    outputs: int,
    *,
    seed: int | jax.Array = 0,
    spatial_shape: Sequence[int] | None = None,
    widths: Sequence[int] | None = None,
) -> nnx.Module:
    """Builds a built-in model by name, initialised from ``seed``.

    Examples:
      >>> import jax.numpy as jnp
      >>> m = make_model("mlp", 64, 10, widths=(32,))
      >>> m(jnp.zeros((2, 64))).shape
      (2, 10)
    """
    if name not in BUILDERS:
        raise ConfigError(f"unknown model {name!r}; known: {', '.join(BUILDERS)}, or an import path pkg.mod:factory")
    if widths is not None and (
        not widths or any(isinstance(w, bool) or not isinstance(w, int) or w < 1 for w in widths)
    ):
        raise ConfigError(f"widths must be positive whole numbers, got {list(widths)}")
    rngs = nnx.Rngs(seed)
    if name == "mlp":
        return MLP(in_features, outputs, tuple(widths) if widths else (256, 256), rngs=rngs)
    if name == "cnn":
        if spatial_shape is None:
            raise ConfigError("model 'cnn' needs a data set with a spatial shape")
        return CNN(in_features, outputs, spatial_shape, rngs=rngs)
    return BUILDERS[name](in_features, outputs, rngs=rngs)
